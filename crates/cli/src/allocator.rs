//! The process's allocator: jemalloc, told to give a burst's memory back to the kernel.
//!
//! Why jemalloc: a proxied request makes about eleven short-lived allocations (futures,
//! header maps, bodies, and hyper's two 8 KiB read buffers, which are beyond glibc's
//! per-thread cache). Measured with callgrind, jemalloc spends ~1,500 instructions per
//! request less on them than glibc, and ~470 less than mimalloc, which also raised a lightly
//! loaded proxy's resident memory from 9.6 to 17 MiB (jemalloc: 10.5).
//!
//! Why it is configured: with jemalloc's defaults a proxy keeps the memory of its worst
//! moment. Freed pages stay "dirty" (resident, kept for reuse) and are returned to the
//! kernel only by a decay that runs when a thread next allocates in the same arena, so
//! pages freed by a burst stay resident for as long as their arena is quiet. The options
//! are baked into the build, in `.cargo/config.toml` (`JEMALLOC_SYS_WITH_MALLOC_CONF`,
//! read by `tikv-jemalloc-sys` when it compiles jemalloc: the workspace forbids the
//! `unsafe` an exported `malloc_conf` symbol would need); `bench/README.md` ("Soak") has
//! the figures behind each one. An operator can still override them at start with the
//! `_RJEM_MALLOC_CONF` environment variable.

/// jemalloc, with the options of `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// What a burst allocates: enough that a few MiB of noise cannot hide it.
    const BURST: usize = 64 << 20;
    /// What may stay resident after it (jemalloc's caches, other tests' allocations).
    const KEPT: usize = 8 << 20;

    /// This process's resident memory, from `/proc/self/status`.
    fn resident_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
        let kib: usize = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in kB");
        kib << 10
    }

    #[test]
    fn memory_freed_after_a_burst_goes_back_to_the_kernel_while_the_process_idles() {
        let before = resident_bytes();
        // Connection-sized blocks (hyper's read buffers are 8 KiB), each written so that
        // its pages are resident.
        let burst: Vec<Box<[u8]>> = (0..BURST / 8192)
            .map(|_| vec![1u8; 8192].into_boxed_slice())
            .collect();
        let peak = resident_bytes();
        assert!(
            peak >= before + BURST / 2,
            "the burst is resident: {before} -> {peak} bytes"
        );
        drop(burst);

        // Nothing allocates from here on: only a background purge can return the pages.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = resident_bytes();
            if now <= before + KEPT {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "5 s after the burst was freed, {} MiB of it are still resident \
                 (before {} MiB, peak {} MiB)",
                (now - before) >> 20,
                before >> 20,
                peak >> 20
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

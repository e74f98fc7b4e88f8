//! The read buffer each HTTP/1.1 connection keeps, at both ends: the room made before a read.
//!
//! Why reads go back to the front: a head is split off the front of the buffer, so the next
//! read lands just after it, and without this the reads of a keep-alive connection walk
//! through the whole allocation before `reserve` moves them back. Each page of the buffer
//! is first touched, and becomes resident, when the reads reach it. In the soak (41-byte
//! requests, about one a second on each of 512 keep-alive connections) every connection's
//! buffer reached its second page in the same second, ~100 s in: 2 MiB more resident at
//! once, which looked like the fault that happened to be running then (bench/README.md,
//! "Memory after a burst"). Now, once everything read has been taken and the reads have
//! walked half a page into the buffer, the next read starts at the front again: a
//! connection whose requests are small keeps only the first page of its buffer resident. It costs no allocation and no copy (the buffer is empty), and it
//! happens only when no head split off the buffer is still alive (the handle is unique).

use bytes::BytesMut;

/// Room kept free in a read buffer before a read; when there is less, [`READ_CHUNK`] more
/// is reserved.
pub(super) const MIN_READ_SPACE: usize = 1024;
/// What a read buffer grows by.
pub(super) const READ_CHUNK: usize = 8 * 1024;
/// How far into its allocation an empty buffer's reads may have walked before they are
/// moved back to the front: half a page, so that they never reach the second one.
const RECLAIM_AFTER: usize = 2048;

/// Makes room in `read` for the next read: at least [`MIN_READ_SPACE`] free, and back at
/// the front of its allocation when it is empty and nothing else holds it.
pub(crate) fn make_room(read: &mut BytesMut) {
    // Only once the reads have walked half a page in: asked after every request, the
    // reclaim showed in the instructions per request (bench/README.md), for what one
    // reclaim in ~50 small requests keeps just as well inside the first page.
    if read.is_empty() && read.capacity() <= READ_CHUNK - RECLAIM_AFTER {
        // Declined, harmlessly, while a head split off the buffer is alive (not unique).
        let _ = read.try_reclaim(READ_CHUNK);
    }
    if read.capacity() - read.len() < MIN_READ_SPACE {
        read.reserve(READ_CHUNK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `blastwall load` sends in the soak: 41 bytes.
    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nhost: 127.0.0.1:40000\r\n\r\n";
    const PAGE: usize = 4096;

    /// One request as the connection sees it: a read, then the head split off and frozen.
    fn read_one(read: &mut BytesMut) -> bytes::Bytes {
        make_room(read);
        read.extend_from_slice(HEAD);
        read.split_to(HEAD.len()).freeze()
    }

    #[test]
    fn small_requests_on_a_keep_alive_connection_stay_in_the_first_page_of_the_buffer() {
        let mut read = BytesMut::new();
        make_room(&mut read);
        let front = read.as_ptr() as usize;
        for request in 0..1000 {
            drop(read_one(&mut read));
            make_room(&mut read);
            let next_read_at = read.as_ptr() as usize + read.len() - front;
            assert!(
                next_read_at < PAGE,
                "after request {request} the next read lands {next_read_at} bytes into the \
                 buffer: its second page becomes resident"
            );
        }
    }

    #[test]
    fn a_head_still_alive_keeps_its_bytes_and_the_next_read_goes_after_it() {
        let mut read = BytesMut::new();
        let held = read_one(&mut read);
        let second = read_one(&mut read);
        assert_eq!(&held[..], HEAD, "not overwritten by the read after it");
        assert_eq!(&second[..], HEAD);
        assert!(read.capacity() >= MIN_READ_SPACE);
    }
}

//! Frame heads, found in a stream of HTTP/2 bytes as it goes by.
//!
//! The guard needs the 9-byte head of each frame and nothing else: its type, flags, length
//! and stream. Bytes come in chunks that start and end anywhere, so the scanner keeps the part
//! of a head it has and how much payload is left to skip; it copies no payload.

/// The client connection preface (RFC 9113, 3.4), which comes before its first frame.
pub(super) const PREFACE_LEN: usize = 24;

/// Frame types (RFC 9113, 6).
pub(super) const DATA: u8 = 0x0;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const RST_STREAM: u8 = 0x3;
pub(super) const GOAWAY: u8 = 0x7;
pub(super) const CONTINUATION: u8 = 0x9;
/// The flag of a DATA or HEADERS frame that ends its stream.
pub(super) const END_STREAM: u8 = 0x1;

/// GOAWAY's error code for a peer that generates excessive load (RFC 9113, 7).
pub(super) const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The head of one frame: all the guard reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) len: u32,
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
}

impl Head {
    pub(super) fn parse(bytes: &[u8; 9]) -> Self {
        Self {
            len: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]),
            kind: bytes[3],
            flags: bytes[4],
            // The reserved high bit is not part of the id.
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }
}

/// Finds frame heads in one direction of a connection, as the bytes go by in chunks of any
/// size: the bytes of a head not yet complete, and how many payload bytes to skip.
#[derive(Debug)]
pub(super) struct FrameScanner {
    head: [u8; 9],
    have: usize,
    skip: usize,
}

impl FrameScanner {
    /// The client's side: its preface first, then frames.
    pub(super) fn inbound() -> Self {
        Self {
            head: [0; 9],
            have: 0,
            skip: PREFACE_LEN,
        }
    }

    /// The server's side: frames from the first byte.
    pub(super) fn outbound() -> Self {
        Self {
            head: [0; 9],
            have: 0,
            skip: 0,
        }
    }

    /// Whether the bytes so far end exactly at the end of a frame.
    pub(super) fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }

    /// Reads `bytes`, calling `on_head` with each complete head and the offset in `bytes`
    /// where its frame began (0 if it began in an earlier chunk). Stops early, returning
    /// that offset, when `on_head` returns false.
    pub(super) fn scan(
        &mut self,
        mut bytes: &[u8],
        mut on_head: impl FnMut(Head) -> bool,
    ) -> Option<usize> {
        let total = bytes.len();
        loop {
            let skipped = self.skip.min(bytes.len());
            self.skip -= skipped;
            bytes = &bytes[skipped..];
            if bytes.is_empty() {
                return None;
            }
            let begins_at = (total - bytes.len()).saturating_sub(self.have);
            let wanted = (9 - self.have).min(bytes.len());
            self.head[self.have..self.have + wanted].copy_from_slice(&bytes[..wanted]);
            self.have += wanted;
            bytes = &bytes[wanted..];
            if self.have < 9 {
                return None;
            }
            self.have = 0;
            let head = Head::parse(&self.head);
            self.skip = head.len as usize;
            if !on_head(head) {
                return Some(begins_at);
            }
        }
    }
}

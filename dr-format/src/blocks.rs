//! The catalog's compression: a sequence of independent zstd frames, each preceded by a zstd
//! skippable frame holding the next frame's compressed length. Any zstd decoder reads the
//! stream as one (skippable frames are skipped); this reader uses the lengths to decompress
//! frames on every core, in order, with bounded memory. See docs/format.md, "Archive".

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Catalog bytes per frame: zstd level 3's own window, so blocks cost almost no ratio.
pub const BLOCK_SIZE: usize = 2 * 1024 * 1024;
/// zstd level: 3 compresses Kubernetes JSON several-fold at hundreds of MB/s.
pub const LEVEL: i32 = 3;
/// Magic of the skippable frame that announces a block (zstd reserves 0x184D2A50..5F).
const MARKER_MAGIC: u32 = 0x184D_2A5B;

/// Compresses into blocks. Write catalog bytes, then call [`BlockWriter::finish`].
pub struct BlockWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    blocks: u64,
    compressor: zstd::bulk::Compressor<'static>,
}

impl<W: Write> BlockWriter<W> {
    pub fn new(inner: W) -> io::Result<Self> {
        let mut compressor = zstd::bulk::Compressor::new(LEVEL)?;
        compressor.include_contentsize(true)?;
        Ok(Self { inner, buf: Vec::with_capacity(BLOCK_SIZE), blocks: 0, compressor })
    }

    fn flush_block(&mut self) -> io::Result<()> {
        let frame = self.compressor.compress(&self.buf)?;
        let mut marker = [0u8; 12];
        marker[..4].copy_from_slice(&MARKER_MAGIC.to_le_bytes());
        marker[4..8].copy_from_slice(&4u32.to_le_bytes());
        marker[8..].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.inner.write_all(&marker)?;
        self.inner.write_all(&frame)?;
        self.buf.clear();
        self.blocks += 1;
        Ok(())
    }

    /// Compresses what is left and returns the inner writer. An empty catalog is one empty
    /// block, so the result is always a valid zstd stream.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.blocks == 0 {
            self.flush_block()?;
        }
        Ok(self.inner)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for BlockWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let take = (BLOCK_SIZE - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == BLOCK_SIZE {
                self.flush_block()?;
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads the next frame's bytes, or `None` at a clean end of stream.
fn next_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut marker = [0u8; 12];
    let mut got = 0;
    while got < marker.len() {
        match r.read(&mut marker[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(invalid("catalog stream ends inside a block marker")),
            n => got += n,
        }
    }
    let magic = u32::from_le_bytes(marker[..4].try_into().expect("4 bytes"));
    let size = u32::from_le_bytes(marker[4..8].try_into().expect("4 bytes"));
    if magic != MARKER_MAGIC || size != 4 {
        return Err(invalid("catalog block marker missing"));
    }
    let len = u32::from_le_bytes(marker[8..].try_into().expect("4 bytes")) as usize;
    if len > zstd::zstd_safe::compress_bound(BLOCK_SIZE) {
        return Err(invalid("catalog block larger than a block can compress to"));
    }
    let mut frame = vec![0u8; len];
    r.read_exact(&mut frame).map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { invalid("catalog stream ends inside a block") } else { e })?;
    Ok(Some(frame))
}

type BlockResult = io::Result<Vec<u8>>;
type Job = (Vec<u8>, SyncSender<BlockResult>);

/// Decompresses the blocks read from `inner` on `workers` threads and yields the catalog in
/// order. Errors (including those of `inner`) come out of `read` where they occurred.
///
/// Memory: each worker holds one block, at most `workers` finished blocks wait for the
/// reader, and output buffers are recycled (fresh 4 MiB allocations would be page-faulted
/// in every time).
pub fn parallel_reader<R: Read + Send + 'static>(mut inner: R, workers: usize) -> impl Read {
    let workers = workers.max(1);
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(workers);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(2 * workers + 1);
    let spare_rx = Arc::new(Mutex::new(spare_rx));
    for _ in 0..workers {
        let jobs_rx = jobs_rx.clone();
        let spare_rx = spare_rx.clone();
        std::thread::spawn(move || {
            let Ok(mut decompressor) = zstd::bulk::Decompressor::new() else { return };
            loop {
                let job = jobs_rx.lock().expect("not poisoned").recv();
                let Ok((frame, done)) = job else { return };
                let mut out = spare_rx.lock().expect("not poisoned").try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK_SIZE));
                out.clear();
                let result = decompressor.decompress_to_buffer(&frame, &mut out).map(|_| out);
                let _ = done.send(result);
            }
        });
    }
    // The splitter reads frames in order and queues one result slot per frame, so the
    // reader receives blocks in stream order whatever order workers finish in.
    let (order_tx, order_rx) = sync_channel::<Receiver<BlockResult>>(workers);
    std::thread::spawn(move || loop {
        let (done_tx, done_rx) = sync_channel(1);
        match next_frame(&mut inner) {
            Ok(Some(frame)) => {
                if order_tx.send(done_rx).is_err() || jobs_tx.send((frame, done_tx)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = done_tx.send(Err(e));
                let _ = order_tx.send(done_rx);
                return;
            }
        }
    });
    OrderedBlocks { order: order_rx, spare: spare_tx, cur: Vec::new(), pos: 0, failed: false }
}

struct OrderedBlocks {
    order: Receiver<Receiver<BlockResult>>,
    spare: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl Read for OrderedBlocks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.failed {
                return Err(io::Error::other("the catalog stream already failed"));
            }
            let Ok(slot) = self.order.recv() else { return Ok(0) };
            match slot.recv() {
                Ok(Ok(block)) => {
                    let used = std::mem::replace(&mut self.cur, block);
                    if used.capacity() >= BLOCK_SIZE {
                        let _ = self.spare.try_send(used);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("a decompression worker stopped")),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i / 7919) as u8).collect();
        let mut w = BlockWriter::new(Vec::new()).unwrap();
        for piece in data.chunks(100_003) {
            w.write_all(piece).unwrap();
        }
        let compressed = w.finish().unwrap();
        let mut out = Vec::new();
        parallel_reader(std::io::Cursor::new(compressed.clone()), 2).read_to_end(&mut out).unwrap_or_else(|e| panic!("{len}: {e}"));
        assert_eq!(out, data, "{len}");
        // Any zstd decoder reads the same stream.
        assert_eq!(zstd::stream::decode_all(&compressed[..]).unwrap(), data, "{len}");
    }

    #[test]
    fn blocks_round_trip_at_every_boundary() {
        for len in [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 5 * BLOCK_SIZE + 12345] {
            round_trip(len);
        }
    }

    #[test]
    fn a_stream_without_markers_is_refused() {
        let plain = zstd::stream::encode_all(&b"not in blocks"[..], 3).unwrap();
        let err = parallel_reader(std::io::Cursor::new(plain), 2).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("marker"), "{err}");
    }
}

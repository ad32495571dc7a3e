//! The stream format: round trips, and a distinct, clear error for every kind of damage;
//! version 3's per-cluster key derivation (a forged header costs no PBKDF2 to reject) and
//! the legacy per-point one of versions 1 and 2.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::digest;
use dr_core::format::crypto::{cluster_salt, ClusterKey, KdfParams, MasterKey, Passphrase, CLUSTER_ITERATIONS};
use dr_core::format::{self, Binding, DecryptReader, EncryptWriter, FormatError, Header, Role};
use dr_core::point::Unlocker;

/// Legacy (version 2) files at a low iteration count keep those tests fast; version 3 always
/// runs 600,000 iterations, once per cluster and passphrase here ([`derive`]).
const LEGACY_KDF: KdfParams = KdfParams { iterations: 1_000, salt: [7; 16], cluster_salt: None };
const SMALL_CHUNK: u32 = 64;
const CLUSTER: &str = "c0ffee00-1111-2222-3333-444455556666";

fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.into()).unwrap()
}
fn binding() -> Binding {
    Binding { cluster_id: CLUSTER.into(), point_id: "20261121T093000Z-0a1b2c3d".into(), role: Role::Archive }
}
/// A point key from the passphrase, as `MasterKey::derive` makes it, with each version 3
/// cluster master derived once per test binary (as the `Unlocker` does per process).
fn derive(passphrase: &str, kdf: KdfParams) -> MasterKey {
    let Some(salt) = kdf.cluster_salt else { return MasterKey::derive(&pass(passphrase), kdf) };
    type Derived = HashMap<(String, [u8; 16], u32), Arc<ClusterKey>>;
    static CLUSTERS: OnceLock<Mutex<Derived>> = OnceLock::new();
    let cluster = CLUSTERS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((passphrase.to_owned(), salt, kdf.iterations))
        .or_insert_with(|| Arc::new(ClusterKey::derive_for(&pass(passphrase), kdf)))
        .clone();
    cluster.point_key(kdf).unwrap()
}
/// A fresh version 3 point key (its own random point salt) for [`CLUSTER`].
fn key() -> MasterKey {
    derive("correct horse battery staple", KdfParams::generate(CLUSTER))
}
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}
fn encrypt(plain: &[u8], chunk: u32) -> Vec<u8> {
    format::seal_all(plain, &key(), &binding(), chunk)
}
fn header_len(ct: &[u8]) -> usize {
    Header::read(&mut &ct[..]).unwrap().len()
}

/// A sealed stream in small chunks, with where its chunks start.
struct Sealed {
    plain: Vec<u8>,
    ct: Vec<u8>,
    /// Header length: chunk 0 starts here.
    hl: usize,
    /// Stored size of every non-final chunk.
    stride: usize,
}

fn sealed(len: usize) -> Sealed {
    let plain = data(len);
    let ct = encrypt(&plain, SMALL_CHUNK);
    let hl = header_len(&ct);
    Sealed { plain, ct, hl, stride: SMALL_CHUNK as usize + format::IV_LEN + format::TAG_LEN }
}

/// Decrypts with the right passphrase, returning what was released before any error.
fn decrypt(ct: &[u8], expected: &Binding, passphrase: &str) -> (Vec<u8>, Result<(), FormatError>) {
    let mut out = Vec::new();
    let mut reader = match DecryptReader::open(ct, expected, |kdf| derive(passphrase, kdf)) {
        Ok(r) => r,
        Err(e) => return (out, Err(e)),
    };
    let mut buf = [0u8; 1000];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(FormatError::from_io(e))),
        }
    }
}
fn decrypt_ok(ct: &[u8]) -> Result<Vec<u8>, FormatError> {
    let (out, r) = decrypt(ct, &binding(), "correct horse battery staple");
    r.map(|_| out)
}

#[test]
fn round_trips_at_every_size_boundary() {
    let c = SMALL_CHUNK as usize;
    for len in [0, 1, c - 1, c, c + 1, 2 * c, 2 * c + 1, 100 * c + 17] {
        let plain = data(len);
        let ct = encrypt(&plain, SMALL_CHUNK);
        let header = Header::read(&mut &ct[..]).unwrap();
        assert_eq!((header.version(), header.is_legacy_kdf()), (format::VERSION, false));
        assert_eq!(header.kdf().cluster_salt, Some(cluster_salt(CLUSTER)));
        let chunks = if len == 0 { 1 } else { len.div_ceil(c) };
        assert_eq!(ct.len(), header_len(&ct) + len + chunks * (format::IV_LEN + format::TAG_LEN), "len {len}");
        assert_eq!(decrypt_ok(&ct).unwrap(), plain, "len {len}");
    }
}

#[test]
fn round_trip_with_default_chunk_size_and_odd_write_sizes() {
    let plain = data(3 * format::DEFAULT_CHUNK_SIZE as usize + 12345);
    let mut w = EncryptWriter::new(Vec::new(), &key(), &binding(), format::DEFAULT_CHUNK_SIZE).unwrap();
    for piece in plain.chunks(7919) {
        w.write_all(piece).unwrap();
    }
    let ct = w.finish().unwrap();
    assert_eq!(decrypt_ok(&ct).unwrap(), plain);
}

#[test]
fn same_plaintext_encrypts_differently_each_time() {
    let plain = data(100);
    assert_ne!(encrypt(&plain, SMALL_CHUNK), encrypt(&plain, SMALL_CHUNK));
}

/// A pipe with a bounded queue, so neither side can hold the whole stream.
struct Pipe(std::sync::mpsc::SyncSender<Vec<u8>>);
impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.send(b.to_vec()).map_err(std::io::Error::other)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
struct PipeReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}
impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn multi_gib_stream_round_trips_without_being_held_in_memory() {
    const TOTAL: u64 = 2 * 1024 * 1024 * 1024 + 4097; // over 2 GiB, not chunk-aligned
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    let writer = std::thread::spawn(move || {
        let mut w = EncryptWriter::new(Pipe(tx), &key(), &binding(), format::DEFAULT_CHUNK_SIZE).unwrap();
        let block = data(1 << 20);
        let mut sha = digest::Context::new(&digest::SHA256);
        let mut left = TOTAL;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            w.write_all(&block[..n]).unwrap();
            sha.update(&block[..n]);
            left -= n as u64;
        }
        w.finish().unwrap();
        sha.finish()
    });
    let mut r = DecryptReader::open(PipeReader { rx, cur: Vec::new(), pos: 0 }, &binding(), |kdf| derive("correct horse battery staple", kdf)).unwrap();
    let mut sha = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        total += n as u64;
    }
    let written = writer.join().unwrap();
    assert_eq!(total, TOTAL);
    assert_eq!(sha.finish().as_ref(), written.as_ref());
}

#[test]
fn wrong_passphrase_is_reported_as_such() {
    let ct = encrypt(&data(500), SMALL_CHUNK);
    let (out, r) = decrypt(&ct, &binding(), "Tr0ub4dor&3");
    assert!(matches!(r, Err(FormatError::WrongPassphrase)), "{r:?}");
    assert!(out.is_empty());
}

#[test]
fn any_flipped_bit_in_the_header_is_reported_as_damage() {
    let ct = encrypt(&data(500), SMALL_CHUNK);
    let hl = header_len(&ct);
    for byte in 8..hl {
        let mut bad = ct.clone();
        bad[byte] ^= 0x10;
        let r = decrypt_ok(&bad);
        assert!(matches!(r, Err(FormatError::HeaderDamaged) | Err(FormatError::UnsupportedVersion(_))), "byte {byte}: {r:?}");
    }
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert!(matches!(decrypt_ok(&bad), Err(FormatError::NotARestorePoint)));
}

#[test]
fn header_forged_with_a_fresh_checksum_fails_authentication() {
    // Someone edits the chunk size and recomputes the unkeyed checksum: the keyed MAC catches it.
    let ct = encrypt(&data(500), SMALL_CHUNK);
    let hl = header_len(&ct);
    let mut bad = ct.clone();
    bad[35] ^= 0x40; // low byte of the chunk size: 64 -> 0
    bad[35] = 128;
    let sum = digest::digest(&digest::SHA256, &bad[..hl - 32]);
    bad[hl - 32..hl].copy_from_slice(sum.as_ref());
    let (out, r) = decrypt(&bad, &binding(), "correct horse battery staple");
    assert!(matches!(r, Err(FormatError::HeaderTampered)), "{r:?}");
    assert!(out.is_empty());
}

#[test]
fn flipped_bit_in_a_body_chunk_releases_only_the_chunks_before_it() {
    let Sealed { plain, ct, hl, stride } = sealed(10 * SMALL_CHUNK as usize + 5);
    let mut bad = ct.clone();
    bad[hl + 3 * stride + 10] ^= 0x01; // inside chunk 3's ciphertext
    let (out, r) = decrypt(&bad, &binding(), "correct horse battery staple");
    assert!(matches!(r, Err(FormatError::ChunkDamaged { index: 3 })), "{r:?}");
    assert_eq!(out, plain[..3 * SMALL_CHUNK as usize]);
}

#[test]
fn flipped_bit_in_a_tag_is_detected() {
    let Sealed { ct, hl, stride, .. } = sealed(10 * SMALL_CHUNK as usize + 5);
    let mut bad = ct.clone();
    bad[hl + 2 * stride - 1] ^= 0x80; // last byte of chunk 1's tag
    let (out, r) = decrypt(&bad, &binding(), "correct horse battery staple");
    assert!(matches!(r, Err(FormatError::ChunkDamaged { index: 1 })), "{r:?}");
    assert_eq!(out.len(), SMALL_CHUNK as usize);
}

#[test]
fn flipped_bit_in_the_final_chunk_is_detected() {
    let plain = data(3 * SMALL_CHUNK as usize + 5);
    let mut bad = encrypt(&plain, SMALL_CHUNK);
    let last = bad.len() - 1;
    bad[last] ^= 2;
    let (out, r) = decrypt(&bad, &binding(), "correct horse battery staple");
    assert!(matches!(r, Err(FormatError::FinalChunkInvalid { index: 3 })), "{r:?}");
    assert_eq!(out, plain[..3 * SMALL_CHUNK as usize]);
}

#[test]
fn truncation_at_a_chunk_boundary_is_reported_as_truncation() {
    let Sealed { plain, ct, hl, stride } = sealed(5 * SMALL_CHUNK as usize + 9);
    for chunks in 0..5u32 {
        let cut = &ct[..hl + chunks as usize * stride];
        let (out, r) = decrypt(cut, &binding(), "correct horse battery staple");
        assert!(matches!(r, Err(FormatError::Truncated { chunks: c }) if c == chunks), "{chunks}: {r:?}");
        // The chunk before the cut authenticated as non-final, but it is withheld too: a
        // reader never hands out the tail of a stream it knows is incomplete.
        let released = chunks.saturating_sub(1) as usize * SMALL_CHUNK as usize;
        assert_eq!(out, plain[..released]);
    }
}

#[test]
fn truncation_between_chunk_boundaries_is_detected_at_the_cut() {
    let Sealed { ct, hl, stride, .. } = sealed(5 * SMALL_CHUNK as usize + 9);
    for cut_at in [hl + 2 * stride + 1, hl + 2 * stride + 40, ct.len() - 1] {
        let (out, r) = decrypt(&ct[..cut_at], &binding(), "correct horse battery staple");
        let index = ((cut_at - hl) / stride) as u32;
        assert!(matches!(r, Err(FormatError::FinalChunkInvalid { index: i }) if i == index), "{cut_at}: {r:?}");
        assert_eq!(out.len(), index as usize * SMALL_CHUNK as usize);
    }
    let r = decrypt_ok(&ct[..hl - 5]);
    assert!(matches!(r, Err(FormatError::HeaderTruncated)), "{r:?}");
}

#[test]
fn swapped_chunks_are_reported_as_reordered() {
    let Sealed { plain, ct, hl, stride } = sealed(6 * SMALL_CHUNK as usize + 3);
    let mut bad = ct.clone();
    let (a, b) = (hl + stride, hl + 2 * stride);
    let chunk1 = ct[a..a + stride].to_vec();
    bad.copy_within(b..b + stride, a);
    bad[b..b + stride].copy_from_slice(&chunk1);
    let (out, r) = decrypt(&bad, &binding(), "correct horse battery staple");
    assert!(matches!(r, Err(FormatError::ChunkOutOfPlace { position: 1, belongs_at: 2 })), "{r:?}");
    assert_eq!(out, plain[..SMALL_CHUNK as usize]);
}

#[test]
fn appended_chunk_is_reported_as_trailing_data() {
    // A stream whose last chunk is full: the appended chunk lines up on a chunk boundary.
    let Sealed { plain, ct, hl, stride } = sealed(4 * SMALL_CHUNK as usize);
    let mut bad = ct.clone();
    bad.extend_from_slice(&ct[hl..hl + stride]);
    let (out, r) = decrypt(&bad, &binding(), "correct horse battery staple");
    assert!(matches!(r, Err(FormatError::TrailingData { after_chunk: 3 })), "{r:?}");
    assert_eq!(out, plain[..3 * SMALL_CHUNK as usize]);
}

#[test]
fn point_copied_to_another_cluster_or_renamed_is_refused_before_decrypting() {
    let ct = encrypt(&data(300), SMALL_CHUNK);
    let moved = Binding { cluster_id: "another-cluster".into(), ..binding() };
    let (out, r) = decrypt(&ct, &moved, "correct horse battery staple");
    assert!(matches!(&r, Err(FormatError::WrongCluster { found, expected }) if found == &binding().cluster_id && expected == "another-cluster"), "{r:?}");
    assert!(out.is_empty());
    let renamed = Binding { point_id: "20990101T000000Z-ffffffff".into(), ..binding() };
    assert!(matches!(decrypt(&ct, &renamed, "correct horse battery staple").1, Err(FormatError::WrongPoint { .. })));
    let as_manifest = Binding { role: Role::Manifest, ..binding() };
    assert!(matches!(decrypt(&ct, &as_manifest, "correct horse battery staple").1, Err(FormatError::WrongRole { .. })));
}

#[test]
fn chunks_spliced_from_another_stream_do_not_authenticate() {
    let plain = data(4 * SMALL_CHUNK as usize + 1);
    let a = encrypt(&plain, SMALL_CHUNK);
    let b = encrypt(&plain, SMALL_CHUNK); // same key, another file (its own random file ID)
    let hl = header_len(&a);
    let stride = SMALL_CHUNK as usize + format::IV_LEN + format::TAG_LEN;
    let mut bad = a.clone();
    bad[hl + stride..hl + 2 * stride].copy_from_slice(&b[hl + stride..hl + 2 * stride]);
    let (out, r) = decrypt(&bad, &binding(), "correct horse battery staple");
    assert!(matches!(r, Err(FormatError::ChunkDamaged { index: 1 })), "{r:?}");
    assert_eq!(out.len(), SMALL_CHUNK as usize);
}

#[test]
fn error_messages_say_what_to_do_and_never_contain_the_passphrase() {
    let ct = encrypt(&data(10), SMALL_CHUNK);
    let (_, r) = decrypt(&ct, &binding(), "Tr0ub4dor&3");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("wrong passphrase") && msg.contains("use the passphrase"), "{msg}");
    assert!(!msg.contains("Tr0ub4dor") && !msg.contains("correct horse"));
}

#[test]
fn a_forged_legacy_header_asking_for_a_costly_key_derivation_is_refused_before_deriving() {
    let mut ct = format::seal_all(&data(100), &MasterKey::derive(&pass("p"), LEGACY_KDF), &binding(), SMALL_CHUNK);
    let len = header_len(&ct);
    // A forger rewrites the iteration count and recomputes the (unkeyed) checksum.
    ct[12..16].copy_from_slice(&50_000_000u32.to_be_bytes());
    let sum = digest::digest(&digest::SHA256, &ct[..len - 32]);
    ct[len - 32..len].copy_from_slice(sum.as_ref());
    // Refused while reading the header, which derives nothing.
    let err = Header::read(&mut &ct[..]).unwrap_err();
    assert!(matches!(err, FormatError::HeaderInvalid { field: "iteration count" }), "{err}");
    // What writers use, and ten times it, are accepted.
    ct[12..16].copy_from_slice(&dr_core::format::crypto::MAX_ITERATIONS.to_be_bytes());
    let sum = digest::digest(&digest::SHA256, &ct[..len - 32]);
    ct[len - 32..len].copy_from_slice(sum.as_ref());
    assert!(Header::read(&mut &ct[..]).is_ok());
}

/// Recomputes the unkeyed header checksum after a forger's edit.
fn rechecksum(ct: &mut [u8]) {
    let len = header_len_unchecked(ct);
    let sum = digest::digest(&digest::SHA256, &ct[..len - 32]);
    ct[len - 32..len].copy_from_slice(sum.as_ref());
}
/// Header length from its two ID length bytes (the checksum may not match yet).
fn header_len_unchecked(ct: &[u8]) -> usize {
    let n = ct[43] as usize;
    let m = ct[44 + n] as usize;
    125 + n + m
}

/// What a forger without the passphrase writes: a version 3 header for this cluster and
/// point with a fresh random salt, KCV and MAC, and a correct checksum, then some bytes.
fn forged_like(genuine: &[u8]) -> Vec<u8> {
    let len = header_len(genuine);
    let mut forged = genuine[..len].to_vec();
    format::crypto::fill_random(&mut forged[16..32]);
    format::crypto::fill_random(&mut forged[len - 80..len - 32]);
    rechecksum(&mut forged);
    forged.extend_from_slice(&data(200));
    forged
}

/// Opens `ct` through the unlocker as a point reader does: header, binding, key, KCV and MAC.
async fn open_with(unlocker: &Arc<Unlocker>, ct: &[u8]) -> Result<Vec<u8>, FormatError> {
    let header = Header::read(&mut &ct[..])?;
    header.check_binding(&binding())?;
    let key = unlocker.key(header.kdf()).await;
    let mut out = Vec::new();
    DecryptReader::new(&ct[header.len()..], &header, &key)?.read_to_end(&mut out).map_err(FormatError::from_io)?;
    Ok(out)
}

#[tokio::test]
async fn forged_version_3_headers_with_random_salts_are_rejected_without_a_pbkdf2() {
    let plain = data(300);
    let genuine = encrypt(&plain, SMALL_CHUNK);
    let forged: Vec<Vec<u8>> = (0..200).map(|_| forged_like(&genuine)).collect();
    assert!(forged.iter().all(|f| Header::read(&mut &f[..]).is_ok()), "the forgeries pass the checksum");

    let unlocker = Unlocker::new(pass("correct horse battery staple"));
    let started = std::time::Instant::now();
    for f in &forged {
        let r = open_with(&unlocker, f).await;
        // Nothing tells a forgery from a wrong passphrase at one point: the point layer does,
        // from the cluster's other points.
        assert!(matches!(r, Err(FormatError::WrongPassphrase)), "{r:?}");
    }
    assert_eq!(open_with(&unlocker, &genuine).await.unwrap(), plain);
    // One PBKDF2 for the cluster, none for the 200 forgeries: each cost an HKDF and the KCV.
    assert_eq!(unlocker.pbkdf2_runs(), 1);
    let spent = started.elapsed();
    assert!(spent < std::time::Duration::from_secs(5), "200 forgeries and one genuine file took {spent:?}");

    // A wrong passphrase is still called one, and still costs one derivation per cluster.
    let wrong = Unlocker::new(pass("Tr0ub4dor&3"));
    assert!(matches!(open_with(&wrong, &genuine).await, Err(FormatError::WrongPassphrase)));
    for f in forged.iter().take(20) {
        assert!(matches!(open_with(&wrong, f).await, Err(FormatError::WrongPassphrase)));
    }
    assert_eq!(wrong.pbkdf2_runs(), 1);
}

#[test]
fn a_version_3_header_with_other_kdf_parameters_is_refused_before_deriving() {
    let genuine = encrypt(&data(100), SMALL_CHUNK);
    let no_derivation = |_: KdfParams| -> MasterKey { panic!("a refused header must not be derived") };
    // Another iteration count, higher or lower (lower would still cost a second cluster master).
    for count in [CLUSTER_ITERATIONS + 1, CLUSTER_ITERATIONS - 1, 1_000, dr_core::format::crypto::MAX_ITERATIONS] {
        let mut ct = genuine.clone();
        ct[12..16].copy_from_slice(&count.to_be_bytes());
        rechecksum(&mut ct);
        let r = DecryptReader::open(&ct[..], &binding(), no_derivation);
        let Err(e) = r else { panic!("{count} iterations were accepted") };
        assert!(matches!(e, FormatError::KdfNotWriters { .. }), "{count}: {e}");
        assert!(e.to_string().contains("forged"), "{e}");
    }
    // A version 3 header claiming the legacy KDF (a downgrade to one PBKDF2 per point).
    let mut ct = genuine.clone();
    ct[10] = 1;
    rechecksum(&mut ct);
    assert!(matches!(Header::read(&mut &ct[..]), Err(FormatError::KdfNotWriters { .. })));
    // And a legacy version claiming version 3's KDF.
    let mut ct = genuine.clone();
    ct[8] = 2;
    rechecksum(&mut ct);
    assert!(matches!(Header::read(&mut &ct[..]), Err(FormatError::HeaderInvalid { field: "key derivation function" })));
}

#[test]
fn a_version_3_header_of_another_cluster_is_refused_before_deriving() {
    // Written for another cluster (its cluster salt is that cluster's) and planted here.
    let other = Binding { cluster_id: "another-cluster".into(), ..binding() };
    let key = derive("correct horse battery staple", KdfParams::generate("another-cluster"));
    let planted = format::seal_all(&data(100), &key, &other, SMALL_CHUNK);
    let r = DecryptReader::open(&planted[..], &binding(), |_| -> MasterKey { panic!("a refused header must not be derived") });
    assert!(matches!(r, Err(FormatError::WrongCluster { .. })), "{:?}", r.err());
    // A cluster master never serves another cluster's salt (or another count): refused
    // before the HKDF, so a caller holding the wrong master cannot mistake it for a wrong
    // passphrase.
    let header = Header::read(&mut &planted[..]).unwrap();
    assert_eq!(header.kdf().cluster_salt, Some(cluster_salt("another-cluster")));
    let ours = ClusterKey::derive_for(&pass("correct horse battery staple"), KdfParams::generate(CLUSTER));
    assert!(matches!(ours.point_key(header.kdf()), Err(FormatError::KdfNotWriters { .. })));
}

#[tokio::test]
async fn legacy_version_2_files_still_open_with_one_pbkdf2_each() {
    let plain = data(150);
    let p = pass("correct horse battery staple");
    let seal = |salt: u8| format::seal_all(&plain, &MasterKey::derive(&p, KdfParams::legacy(1_000, [salt; 16])), &binding(), SMALL_CHUNK);
    let (a, b) = (seal(1), seal(2));
    let header = Header::read(&mut &a[..]).unwrap();
    assert_eq!((header.version(), header.is_legacy_kdf()), (format::LEGACY_VERSION, true));
    assert_eq!(header.kdf(), KdfParams::legacy(1_000, [1; 16]));
    // Sealed as version 2 was: a random IV per chunk.
    assert_eq!(a.len(), header.len() + plain.len() + 3 * (format::IV_LEN + format::TAG_LEN));

    let unlocker = Unlocker::new(p.clone());
    assert_eq!(open_with(&unlocker, &a).await.unwrap(), plain);
    assert_eq!(open_with(&unlocker, &b).await.unwrap(), plain);
    assert_eq!(open_with(&unlocker, &a).await.unwrap(), plain);
    // Each legacy point has a PBKDF2 of its own (a point's two files share it).
    assert_eq!(unlocker.pbkdf2_runs(), 2);
    let wrong = Unlocker::new(pass("Tr0ub4dor&3"));
    assert!(matches!(open_with(&wrong, &a).await, Err(FormatError::WrongPassphrase)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn points_of_one_cluster_read_at_once_share_one_derivation() {
    // Readers open several manifests at a time: they wait for the one cluster master
    // rather than each deriving it.
    let unlocker = Unlocker::new(pass("correct horse battery staple"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let unlocker = unlocker.clone();
            tokio::spawn(async move { unlocker.key(KdfParams::generate(CLUSTER)).await.params() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().cluster_salt, Some(cluster_salt(CLUSTER)));
    }
    assert_eq!(unlocker.pbkdf2_runs(), 1);
    // Another cluster is another derivation.
    unlocker.key(KdfParams::generate("another-cluster")).await;
    assert_eq!(unlocker.pbkdf2_runs(), 2);
}

//! The backend suite: the same checks of every `Storage` operation, run once per backend.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use ray_history_storage::{Error, Storage};

/// A fresh random folder, so tests sharing one container never see each other's objects.
pub fn unique_root(name: &str) -> Path {
    Path::from(format!("{name}-{:016x}", rand::random::<u64>()))
}

/// Deterministic pseudo-random bytes (incompressible, with no repeating 4 MiB pattern).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Runs every operation against `storage` under a fresh folder.
pub async fn backend_suite(storage: &Storage) {
    let root = unique_root("suite");
    let key = |rest: &str| Path::from(format!("{root}/{rest}"));

    // put, get, overwrite
    let a = key("dir/a.txt");
    storage.put(&a, Bytes::from_static(b"first")).await.unwrap();
    assert_eq!(&storage.get(&a).await.unwrap()[..], b"first");
    storage
        .put(&a, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert_eq!(&storage.get(&a).await.unwrap()[..], b"0123456789");

    // Content-Type follows the layout (logs are text), where the backend keeps attributes.
    let got = storage.object_store().get(&a).await.unwrap();
    if let Some(ct) = got.attributes.get(&object_store::Attribute::ContentType) {
        assert_eq!(ct.as_ref(), "text/plain; charset=utf-8");
    }

    // ranged get and ranged stream
    assert_eq!(&storage.get_range(&a, 2..5).await.unwrap()[..], b"234");
    let (meta, stream) = storage.get_stream(&a, Some(7..10)).await.unwrap();
    assert_eq!(meta.size, 10);
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"789");

    // head
    let meta = storage.head(&a).await.unwrap().expect("a exists");
    assert_eq!(meta.size, 10);
    assert_eq!(meta.location, a);
    assert!(storage.head(&key("missing")).await.unwrap().is_none());
    assert!(matches!(
        storage.get(&key("missing")).await,
        Err(Error::NotFound { .. })
    ));

    // put_if_absent is create-only
    let once = key("dir/once.json");
    assert!(
        storage
            .put_if_absent(&once, Bytes::from_static(b"1"))
            .await
            .unwrap()
    );
    assert!(
        !storage
            .put_if_absent(&once, Bytes::from_static(b"2"))
            .await
            .unwrap()
    );
    assert_eq!(&storage.get(&once).await.unwrap()[..], b"1");

    // put_file_if_absent is create-only too, for a file of one request and one bigger than
    // that (uploaded beside the key, then copied into place), and leaves nothing beside it.
    for (name, len) in [("small.rhsi", 1000), ("big.rhsi", 9 * 1024 * 1024 + 3)] {
        let target = key(&format!("files/{name}"));
        let file = |seed| {
            let mut f = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut f, &noise(len, seed)).unwrap();
            f
        };
        assert!(
            storage
                .put_file_if_absent(&target, file(7), len as u64)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !storage
                .put_file_if_absent(&target, file(8), len as u64)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            storage.get(&target).await.unwrap()[..] == noise(len, 7)[..],
            "{name}"
        );
    }
    let beside: Vec<Path> = storage
        .list(Some(&key("files")))
        .map_ok(|o| o.location)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(beside, [key("files/big.rhsi"), key("files/small.rhsi")]);
    for file in beside {
        storage.delete(&file).await.unwrap();
    }

    // list by prefix (recursive) and one level with a delimiter
    storage
        .put(&key("dir/sub/b.txt"), Bytes::from_static(b"b"))
        .await
        .unwrap();
    storage
        .put(&key("dir2/c.txt"), Bytes::from_static(b"c"))
        .await
        .unwrap();
    let mut listed: Vec<String> = storage
        .list(Some(&key("dir")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            key("dir/a.txt").to_string(),
            key("dir/once.json").to_string(),
            key("dir/sub/b.txt").to_string()
        ]
    );
    let level = storage
        .list_with_delimiter(Some(&key("dir")))
        .await
        .unwrap();
    let mut objects: Vec<_> = level.objects.iter().map(|m| m.location.clone()).collect();
    objects.sort();
    assert_eq!(objects, vec![key("dir/a.txt"), key("dir/once.json")]);
    assert_eq!(level.common_prefixes, vec![key("dir/sub")]);
    let top = storage.list_with_delimiter(Some(&root)).await.unwrap();
    let mut prefixes = top.common_prefixes.clone();
    prefixes.sort();
    assert_eq!(prefixes, vec![key("dir"), key("dir2")]);

    // copy replaces the target
    let copy = key("dir2/copy.txt");
    storage
        .put(&copy, Bytes::from_static(b"old"))
        .await
        .unwrap();
    storage.copy(&a, &copy).await.unwrap();
    assert_eq!(&storage.get(&copy).await.unwrap()[..], b"0123456789");

    // delete, and deleting a missing object is fine
    storage.delete(&copy).await.unwrap();
    assert!(storage.head(&copy).await.unwrap().is_none());
    storage.delete(&copy).await.unwrap();

    put_file_roundtrip(storage, &root).await;
    append_suite(storage, &root).await;
    listed_keys_parse(storage).await;
}

/// Log files with odd names come back from a listing as keys that parse to the same file
/// (`Key::parse` accepts only the spelling the layout writes).
async fn listed_keys_parse(storage: &Storage) {
    use ray_history_storage::layout::{ClusterRef, Key, NodeId, SessionName};
    let cluster = ClusterRef::new("suite", &format!("{:016x}", rand::random::<u64>())).unwrap();
    let session = SessionName::new("session_2026-11-21_04-23-31_898414_12602").unwrap();
    let node = NodeId::new(&"ab".repeat(28)).unwrap();
    let names = [
        "odd/a#b%c.log",
        "spaces in name.txt",
        "x{1}[2].out",
        "ünï.log",
    ];
    for name in names {
        let key = cluster.log_file(&session, &node, name).unwrap();
        storage.put(&key, Bytes::from_static(b"x")).await.unwrap();
    }
    let prefix = cluster.node_logs_prefix(&session, &node);
    let mut parsed: Vec<String> = storage
        .list(Some(&prefix))
        .map_ok(|m| match Key::parse(&m.location) {
            Ok(Key::LogFile { relative, .. }) => relative,
            other => panic!("{}: {other:?}", m.location),
        })
        .try_collect()
        .await
        .unwrap();
    parsed.sort();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(parsed, expected);
}

/// `put_file` of a file larger than one upload chunk (multipart), and of a prefix of a file.
async fn put_file_roundtrip(storage: &Storage, root: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.log");
    let data = noise(9 * 1024 * 1024 + 123, 7);
    std::fs::write(&file, &data).unwrap();
    let big = Path::from(format!("{root}/files/big.log"));
    storage
        .put_file(&big, &file, data.len() as u64)
        .await
        .unwrap();
    assert_eq!(
        storage.head(&big).await.unwrap().unwrap().size,
        data.len() as u64
    );
    assert!(storage.get(&big).await.unwrap() == data, "big file differs");

    // Only the first `len` bytes are uploaded (the file may be growing).
    let part = Path::from(format!("{root}/files/part.log"));
    storage.put_file(&part, &file, 1000).await.unwrap();
    assert_eq!(&storage.get(&part).await.unwrap()[..], &data[..1000]);

    let missing = dir.path().join("nope");
    assert!(matches!(
        storage.put_file(&part, &missing, 1).await,
        Err(Error::Io { .. })
    ));
}

/// Appends where supported (Azure), a clear refusal elsewhere.
async fn append_suite(storage: &Storage, root: &Path) {
    let log = Path::from(format!("{root}/append/raylet.out"));
    if !storage.supports_append() {
        let err = storage
            .append(&log, 0, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AppendUnsupported { .. }), "{err}");
        return;
    }
    assert_eq!(
        storage
            .append(&log, 0, Bytes::from_static(b"hello "))
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        storage
            .append(&log, 6, Bytes::from_static(b"world\n"))
            .await
            .unwrap(),
        12
    );
    assert_eq!(&storage.get(&log).await.unwrap()[..], b"hello world\n");

    // A stale or repeated append is refused and reports the real size.
    for stale in [0, 6, 13] {
        match storage
            .append(&log, stale, Bytes::from_static(b"dup"))
            .await
        {
            Err(Error::AppendPosition {
                expected, actual, ..
            }) => {
                assert_eq!((expected, actual), (stale, Some(12)));
            }
            other => panic!("append at {stale}: {other:?}"),
        }
    }
    assert_eq!(&storage.get(&log).await.unwrap()[..], b"hello world\n");

    // More than one 4 MiB block in one call.
    let big = noise(9 * 1024 * 1024 + 5, 3);
    let size = storage.append(&log, 12, big.clone().into()).await.unwrap();
    assert_eq!(size, 12 + big.len() as u64);
    let back = storage.get(&log).await.unwrap();
    assert_eq!(&back[..12], b"hello world\n");
    assert!(back[12..] == big[..], "appended bytes differ");

    // An empty append checks the position without writing.
    assert_eq!(
        storage.append(&log, size, Bytes::new()).await.unwrap(),
        size
    );
    assert!(matches!(
        storage.append(&log, 1, Bytes::new()).await,
        Err(Error::AppendPosition { actual: Some(s), .. }) if s == size
    ));

    // An empty file still gets its (empty) blob, with the layout's content type.
    let empty = Path::from(format!("{root}/append/empty.err"));
    assert_eq!(storage.append(&empty, 0, Bytes::new()).await.unwrap(), 0);
    assert_eq!(storage.head(&empty).await.unwrap().unwrap().size, 0);
    let got = storage.object_store().get(&log).await.unwrap();
    assert_eq!(
        got.attributes
            .get(&object_store::Attribute::ContentType)
            .map(|v| v.as_ref()),
        Some("text/plain; charset=utf-8")
    );
}

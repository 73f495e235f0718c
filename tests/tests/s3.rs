//! The object-store root on S3 (moto's server mode): what the lake and the checkpoints rely
//! on — whole-object visibility, create-only puts, multipart uploads that leave nothing behind
//! when aborted — checked against a real S3 API server.

use bytes::Bytes;
use northstar_e2e::s3::S3Server;
use northstar_runtime::objstore::{ObjectRoot, ObjectRootError, MULTIPART_THRESHOLD, PART_SIZE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_root_puts_whole_objects_never_replaces_creates_and_aborts_cleanly() {
    let s3 = S3Server::start().await;
    s3.create_bucket("lake").await;
    let root = ObjectRoot::open_with_env("s3://lake/tenant/a", s3.env()).expect("open s3 root");
    assert!(!root.is_local());
    let bucket = ObjectRoot::open_with_env("s3://lake", s3.env()).expect("open bucket");

    // A small object: one PUT, under the root's prefix.
    let key = "events/event_date=2026-11-26/event_name=Signed%20Up/part-1.parquet";
    root.put_durable(key, b"small".to_vec()).await.expect("put");
    assert_eq!(root.get(key).await.expect("get"), b"small");
    assert_eq!(
        root.list("events").await.expect("list"),
        vec![key.to_string()]
    );
    assert_eq!(
        bucket.list("tenant").await.expect("list bucket"),
        vec![format!("tenant/a/{key}")],
        "keys live below the root's prefix, verbatim"
    );

    // Create-only (ledger entries, checkpoints): If-None-Match.
    assert!(root
        .create_durable("_state/o1.json", b"first".to_vec())
        .await
        .expect("create"));
    assert!(
        !root
            .create_durable("_state/o1.json", b"second".to_vec())
            .await
            .expect("exists"),
        "an existing object is never replaced"
    );
    assert_eq!(root.get("_state/o1.json").await.expect("get"), b"first");

    // A large object goes up as a multipart upload and is read back whole.
    let big: Vec<u8> = (0..MULTIPART_THRESHOLD + PART_SIZE + 12_345)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    root.put_durable("big.parquet", big.clone())
        .await
        .expect("multipart put");
    assert!(
        root.get("big.parquet").await.expect("get big") == big,
        "multipart object intact"
    );
    assert_eq!(
        s3.pending_uploads("lake").await,
        0,
        "the upload was completed"
    );

    // An upload whose third part cannot be produced is aborted: no object, no parts left.
    let parts = futures::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; PART_SIZE])),
        Ok(Bytes::from(vec![2u8; PART_SIZE])),
        Err("the encoder failed"),
    ]);
    let err = root.put_parts("aborted.parquet", parts).await;
    assert!(
        matches!(&err, Err(ObjectRootError::Aborted { reason, .. }) if reason.contains("encoder")),
        "{err:?}"
    );
    assert!(
        !root
            .list("")
            .await
            .expect("list")
            .iter()
            .any(|k| k.starts_with("aborted")),
        "nothing of the aborted upload is visible"
    );
    assert_eq!(
        s3.pending_uploads("lake").await,
        0,
        "the aborted upload left no parts\n{}",
        s3.log_tail()
    );

    root.delete(key).await.expect("delete");
    root.delete(key)
        .await
        .expect("deleting a missing object is fine");
    assert!(root.get(key).await.is_err());
}

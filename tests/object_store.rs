//! Sources and the cache in an object store: a real S3 server (s3s-fs, in
//! this process, on a localhost port) serves the bundled sample's WARC and
//! OWI files to the real `dflow` binary, and holds the cache's shared tier.
//! A run from the store gives the lock file and tables of a local run; a
//! second machine sharing the cache computes nothing; bad URLs, credentials
//! and endpoints are clear errors.

mod common;
#[path = "common/s3.rs"]
mod s3;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use common::{Project, RunLog};
use dflow_engine::cache::shared::{Published, SharedCache};
use dflow_engine::cache::{EntryMeta, EntryOutput};
use dflow_engine::storage::{ObjectReader, ObjectUrl, stores};
use s3::{BUCKET, S3Server, SECRET_KEY, command_env, dflow_env, run_env, sample, sql_env};
use std::io::{Read, Seek, SeekFrom};

const PIPELINE: &str = r#"version: 1
name: stores
nodes:
  pages:
    op: warc
    params: { paths: ["sample/release-*/*.warc.gz"] }
  owi:
    op: owi
    params: { paths: ["sample/owi/*/*.parquet"] }
  faqs:
    op: extract
    inputs: { pages: pages }
  per_site:
    op: sql
    inputs: { f: faqs }
    params: { query: "SELECT url, count(*) AS pairs FROM f GROUP BY url ORDER BY url" }
  owi_langs:
    op: sql
    inputs: { o: owi }
    params: { query: "SELECT url, language, title FROM o ORDER BY url, language" }
"#;

fn project_with_pipeline() -> Project {
    let p = Project::new("empty");
    p.write("pipeline.yaml", PIPELINE);
    p
}

const QUERIES: [&str; 3] = [
    "SELECT * FROM per_site",
    "SELECT * FROM owi_langs",
    "SELECT count(*) AS n, sum(length(html)) AS bytes FROM pages",
];

#[test]
fn sources_in_a_store_give_the_lock_file_and_tables_of_local_disk() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let local = project_with_pipeline();
    common::copy_dir(&sample("release-1"), &local.path("sample/release-1"));
    common::copy_dir(&sample("release-2"), &local.path("sample/release-2"));
    common::copy_dir(&sample("owi"), &local.path("sample/owi"));
    let log = run_env(&local, &s3, &[]);
    assert_eq!(log.code, 0, "{}", log.stderr);

    let remote = project_with_pipeline();
    let root = format!("--source-root=s3://{BUCKET}/data");
    let log = run_env(&remote, &s3, &[&root]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert_eq!(log.computed()["pages"].len(), 5, "{:?}", log.computed());
    assert_eq!(
        local.read("dflow.lock"),
        remote.read("dflow.lock"),
        "the lock files differ"
    );
    for q in QUERIES {
        assert_eq!(
            sql_env(&local, &s3, &[], q),
            sql_env(&remote, &s3, &[&root], q),
            "{q}"
        );
    }
    // Nothing changed in the store: the second run computes nothing (the
    // digests of the objects are remembered by their entity tags).
    let again = run_env(&remote, &s3, &[&root]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.computed().is_empty(), "{:?}", again.computed());
}

const EXPORT: &str = r#"
  export_sites:
    op: export
    inputs: { table: per_site }
    params: { path: "s3://bucket/exports/{url}.csv" }
"#;

#[test]
fn a_cache_in_a_store_is_shared_by_every_machine() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let first = project_with_pipeline();
    first.write("pipeline.yaml", &format!("{PIPELINE}{EXPORT}"));
    let log = run_env(&first, &s3, &[&root, &cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let manifests = s3.keys("cache/entries");
    assert!(!manifests.is_empty(), "nothing published");
    assert!(!s3.keys("cache/blobs").is_empty(), "no blobs");
    assert!(!s3.keys("").iter().any(|k| k.contains("meta.json")));
    // The export landed in the store: one file per site page, and the
    // node's manifest of what it wrote.
    let exported = s3.keys("exports");
    assert!(
        exported
            .iter()
            .any(|k| k.ends_with(".dflow-export-export_sites.json")),
        "{exported:?}"
    );
    assert!(exported.len() > 100, "{exported:?}");

    // Another machine: its own empty `.dflow/`, the same shared cache.
    let second = project_with_pipeline();
    second.write("pipeline.yaml", &format!("{PIPELINE}{EXPORT}"));
    let log = run_env(&second, &s3, &[&root, &cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed().is_empty(), "computed {:?}", log.computed());
    assert_eq!(first.read("dflow.lock"), second.read("dflow.lock"));
    for q in QUERIES {
        assert_eq!(
            sql_env(&first, &s3, &[&root, &cache], q),
            sql_env(&second, &s3, &[&root, &cache], q),
            "{q}"
        );
    }
    common::assert_cache_valid(&second.path(".dflow"));
    // A third one only queries: `dflow sql` pulls what it reads.
    let third = project_with_pipeline();
    third.write("pipeline.yaml", &format!("{PIPELINE}{EXPORT}"));
    std::fs::copy(first.path("dflow.lock"), third.path("dflow.lock")).expect("lock");
    assert_eq!(
        sql_env(&third, &s3, &[&root, &cache], QUERIES[0]),
        sql_env(&first, &s3, &[&root, &cache], QUERIES[0])
    );
}

#[test]
fn bad_urls_credentials_and_endpoints_are_clear_errors() {
    let mut s3 = S3Server::start();
    s3.upload_sample("data");
    let p = project_with_pipeline();
    let stderr = |out: Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    p.edit("sample/release-*/*.warc.gz", "ftp://host/x/*.warc.gz");
    let err = stderr(dflow_env(&p, &s3, &["run", "pipeline.yaml"]));
    assert!(err.contains("not a store dflow knows"), "{err}");

    p.edit(
        "ftp://host/x/*.warc.gz",
        "https://example.invalid/crawl/*.warc.gz",
    );
    let err = stderr(dflow_env(&p, &s3, &["run", "pipeline.yaml"]));
    assert!(err.contains("cannot be listed"), "{err}");

    p.edit(
        "https://example.invalid/crawl/*.warc.gz",
        "s3://no-such-bucket/sample/release-*/*.warc.gz",
    );
    let err = stderr(dflow_env(&p, &s3, &["run", "pipeline.yaml"]));
    assert!(err.contains("s3://no-such-bucket"), "{err}");

    p.edit(
        "s3://no-such-bucket/sample/release-*/*.warc.gz",
        "s3://bucket/data/sample/release-*/*.warc.gz",
    );
    let mut wrong = command_env(&p, &s3, &["run", "pipeline.yaml"]);
    wrong.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let err = stderr(wrong.output().expect("run"));
    assert!(err.contains("credentials"), "{err}");
    assert!(
        !err.contains(SECRET_KEY) && !err.contains("not-the-secret"),
        "{err}"
    );

    s3.stop();
    let err = stderr(dflow_env(&p, &s3, &["run", "pipeline.yaml"]));
    assert!(err.contains("s3://bucket"), "{err}");
    assert!(err.contains("the store can be reached"), "{err}");
}

#[test]
fn an_object_reads_and_seeks_in_blocks() {
    let s3 = S3Server::start();
    let bytes: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("blob"), &bytes).expect("write");
    s3.put_file("reader/blob", &dir.path().join("blob"));
    s3.register_client("reader-test");
    let url = ObjectUrl::parse("s3://reader-test/reader/blob").expect("url");
    let mut reader = ObjectReader::open(&url).expect("open").with_block(4096 + 7);
    assert_eq!(reader.size(), bytes.len() as u64);
    let mut all = Vec::new();
    reader.read_to_end(&mut all).expect("read");
    assert!(all == bytes, "the object read back differs");
    for at in [0u64, 5, 4096 + 6, 4096 + 7, 200_000, 399_999] {
        reader.seek(SeekFrom::Start(at)).expect("seek");
        let mut b = [0u8; 1];
        reader.read_exact(&mut b).expect("read");
        assert_eq!(b[0], bytes[at as usize], "at {at}");
    }
    reader.seek(SeekFrom::End(0)).expect("seek");
    assert_eq!(reader.read(&mut [0u8; 8]).expect("read"), 0);
}

fn entry_meta(key: &str) -> EntryMeta {
    EntryMeta {
        format: dflow_engine::cache::store::ENTRY_FORMAT,
        key: key.into(),
        op: "sql".into(),
        version: 1,
        node: "n".into(),
        params: serde_json::Value::Null,
        inputs: Default::default(),
        partition_digest: None,
        outputs: std::collections::BTreeMap::from([(
            "out".to_string(),
            EntryOutput::Artifact {
                dir: "art".into(),
                digest: "d".into(),
                bytes: 0,
            },
        )]),
        created_unix_ms: 0,
        seconds: 0.0,
    }
}

#[test]
fn of_two_writers_of_one_key_one_publishes_and_the_other_checks() {
    let s3 = S3Server::start();
    s3.register_client("two-writers-test");
    let shared = SharedCache::open(&ObjectUrl::parse("s3://two-writers-test/race").expect("url"))
        .expect("shared");
    let key = "ab".repeat(32);
    let entry = |content: &[u8]| {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("art")).expect("mkdir");
        std::fs::write(dir.path().join("art/x"), content).expect("write");
        // A file larger than one part goes up in a multipart upload.
        std::fs::write(dir.path().join("art/big"), vec![7u8; (8 << 20) + 5]).expect("write");
        dir
    };
    let (mine, theirs, other) = (entry(b"same"), entry(b"same"), entry(b"other"));
    assert_eq!(
        shared
            .publish(mine.path(), &entry_meta(&key))
            .expect("publish"),
        Published::New
    );
    // The server refuses the second create-only put (If-None-Match: *).
    assert_eq!(
        shared
            .publish(theirs.path(), &entry_meta(&key))
            .expect("publish"),
        Published::Agreed
    );
    assert_eq!(
        shared
            .publish(other.path(), &entry_meta(&key))
            .expect("publish"),
        Published::Disagreed
    );
    let manifest = shared.manifest(&key).expect("read").expect("published");
    let pulled = tempfile::tempdir().expect("tempdir");
    shared.pull(&manifest, pulled.path()).expect("pull");
    assert_eq!(
        std::fs::read(pulled.path().join("art/x")).expect("read"),
        b"same"
    );
    assert_eq!(
        std::fs::metadata(pulled.path().join("art/big"))
            .expect("big")
            .len(),
        (8 << 20) + 5
    );
}

#[test]
fn gc_of_a_shared_cache_keeps_what_any_pipeline_references() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let args = ["run", "pipeline.yaml", "--quiet", &root, &cache];
    let a = project_with_pipeline();
    let b = project_with_pipeline();
    b.edit("name: stores", "name: other");
    b.edit("ORDER BY url\" }", "ORDER BY pairs DESC, url\" }");
    // Two pipelines on two machines, at once, one shared cache.
    let spawn = |p: &Project| command_env(p, &s3, &args).spawn().expect("spawn dflow");
    let (run_a, run_b) = (spawn(&a), spawn(&b));
    for child in [run_a, run_b] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A changes a query: its old `per_site` entry is referenced no more.
    a.edit("count(*) AS pairs", "count(*) AS n");
    let out = dflow_env(&a, &s3, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // gc from a third machine that never ran anything.
    let c = project_with_pipeline();
    c.edit("name: stores", "name: third");
    let gc = ["gc", "pipeline.yaml", "--grace-hours", "0", &root, &cache];
    s3.put_file(
        "cache/locks/broken.json",
        &sample("owi/2026-11-01/TOWI-2026-11-01-dc1-eng-faq.parquet"),
    );
    let refused = dflow_env(&c, &s3, &gc);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("broken.json"), "{err}");
    std::fs::remove_file(s3.root.path().join(BUCKET).join("cache/locks/broken.json"))
        .expect("remove");
    let entries_before = s3.keys("cache/entries").len();
    let out = dflow_env(&c, &s3, &gc);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("removed 1 entries"), "{text}");
    assert_eq!(s3.keys("cache/entries").len(), entries_before - 1);

    // Nothing either pipeline references was lost: fresh machines compute
    // nothing.
    for p in [&a, &b] {
        let fresh = project_with_pipeline();
        std::fs::copy(p.pipeline(), fresh.pipeline()).expect("pipeline");
        let log = run_env(&fresh, &s3, &[&root, &cache]);
        assert_eq!(log.code, 0, "{}", log.stderr);
        assert!(log.computed().is_empty(), "computed {:?}", log.computed());
    }
}

#[test]
fn local_entries_are_published_once_the_store_is_there() {
    let mut s3 = S3Server::start();
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let local_project = || {
        let p = project_with_pipeline();
        for dir in ["release-1", "release-2", "owi"] {
            common::copy_dir(&sample(dir), &p.path(&format!("sample/{dir}")));
        }
        p
    };
    // A store that is down stops a run before it computes anything, with
    // an error that names it.
    let first = local_project();
    s3.stop();
    let log = run_env(&first, &s3, &[&cache]);
    assert_ne!(log.code, 0, "a run that cannot reach its cache must fail");
    assert!(log.stderr.contains("s3://bucket"), "{}", log.stderr);
    assert!(log.computed().is_empty(), "computed {:?}", log.computed());
    // Computed without the shared cache, then run with it: every unit is a
    // local hit, and each is published since the store lacks it.
    s3.restart();
    let log = run_env(&first, &s3, &[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let log = run_env(&first, &s3, &[&cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed().is_empty(), "computed {:?}", log.computed());
    let second = local_project();
    let log = run_env(&second, &s3, &[&cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed().is_empty(), "computed {:?}", log.computed());
    assert_eq!(first.read("dflow.lock"), second.read("dflow.lock"));
}

#[test]
fn a_model_folder_in_a_store_is_mirrored_and_gives_the_local_artifact() {
    let s3 = S3Server::start();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("operators/neural/tests/fixtures/tiny-bert");
    for f in std::fs::read_dir(&fixture).expect("fixture").flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        s3.put_file(&format!("models/tiny-bert/{name}"), &f.path());
    }
    let pipeline = |source: &str| {
        format!(
            "version: 1\nname: models\nnodes:\n  m:\n    op: model\n    params: {{ source: \"{source}\", pooling: mean }}\n"
        )
    };
    let local = Project::new("empty");
    common::copy_dir(&fixture, &local.path("tiny-bert"));
    local.write("pipeline.yaml", &pipeline("path:tiny-bert"));
    let remote = Project::new("empty");
    remote.write(
        "pipeline.yaml",
        &pipeline(&format!("path:s3://{BUCKET}/models/tiny-bert")),
    );
    let mirror = tempfile::tempdir().expect("tempdir");
    let run = |p: &Project| {
        let mut c = command_env(p, &s3, &["run", "pipeline.yaml", "--log-format", "json"]);
        c.env("DFLOW_MIRROR_DIR", mirror.path());
        RunLog::from_output(&c.output().expect("run dflow"))
    };
    for p in [&local, &remote] {
        let log = run(p);
        assert_eq!(log.code, 0, "{}", log.stderr);
    }
    // The same files give the same artifact digest.
    let digest = |p: &Project| {
        let lock: serde_json::Value =
            serde_json::from_str(&p.read("dflow.lock")).expect("lock json");
        lock["pipelines"]["models"]["nodes"]["m"]["outputs"]["out"]["digest"].clone()
    };
    assert!(digest(&local).is_string(), "{}", local.read("dflow.lock"));
    assert_eq!(digest(&local), digest(&remote));
    // Unchanged objects are not downloaded again: the mirrored file keeps
    // its modification time across a run with a changed param.
    let weights = std::fs::read_dir(mirror.path())
        .expect("mirror")
        .flatten()
        .next()
        .expect("one mirrored folder")
        .path()
        .join("files/model.safetensors");
    let before = std::fs::metadata(&weights)
        .expect("mirrored")
        .modified()
        .expect("mtime");
    remote.edit("pooling: mean", "pooling: cls");
    let log = run(&remote);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let after = std::fs::metadata(&weights)
        .expect("mirrored")
        .modified()
        .expect("mtime");
    assert_eq!(before, after);
}

/// A store through which another writer's manifest lands first: the first
/// create-only put of a manifest is preceded by the rival's put of the same
/// key, as when two writers publish at once and the other one wins (the
/// local test server checks and then writes, so two real concurrent puts
/// could both succeed there and would prove nothing).
#[derive(Debug)]
struct RacingStore {
    inner: Arc<dyn object_store::ObjectStore>,
    rival: std::sync::Mutex<Option<Vec<u8>>>,
    /// HEAD requests seen.
    heads: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Display for RacingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RacingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for RacingStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let manifest = location.as_ref().contains("/entries/");
        let create = matches!(opts.mode, object_store::PutMode::Create);
        let rival = if manifest && create {
            self.rival.lock().expect("rival").take()
        } else {
            None
        };
        if let Some(body) = rival {
            self.inner
                .put_opts(location, body.into(), object_store::PutMode::Create.into())
                .await?;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        if options.head {
            self.heads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[test]
fn a_writer_that_loses_the_race_to_publish_checks_the_winner() {
    use dflow_engine::cache::shared::{MANIFEST_FORMAT, Manifest, ManifestFile};
    let s3 = S3Server::start();
    let client = || s3.client();
    let store_url = "s3://racing";
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("art")).expect("mkdir");
    std::fs::write(dir.path().join("art/x"), b"mine").expect("write");
    let file = |content: &[u8]| ManifestFile {
        path: "art/x".into(),
        bytes: content.len() as u64,
        blake3: blake3::hash(content).to_hex().to_string(),
    };
    for (round, (theirs, expected)) in [
        (b"mine".as_slice(), Published::Agreed),
        (b"theirs".as_slice(), Published::Disagreed),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("{round:064x}");
        let rival = Manifest {
            format: MANIFEST_FORMAT,
            meta: entry_meta(&key),
            files: vec![file(theirs)],
        };
        let racing = RacingStore {
            inner: client(),
            rival: std::sync::Mutex::new(Some(serde_json::to_vec(&rival).expect("json"))),
            heads: Default::default(),
        };
        stores::register(store_url, Arc::new(racing));
        let shared =
            SharedCache::open(&ObjectUrl::parse("s3://racing/c").expect("url")).expect("shared");
        let published = shared
            .publish(dir.path(), &entry_meta(&key))
            .expect("publish");
        assert_eq!(published, expected);
        // The winner's manifest stands.
        let stored = shared.manifest(&key).expect("read").expect("published");
        assert_eq!(stored.files, vec![file(theirs)]);
    }
}

#[test]
fn verify_finds_a_lost_blob_and_the_next_run_publishes_it_again() {
    let s3 = S3Server::start();
    s3.upload_sample("data");
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let root = format!("--source-root=s3://{BUCKET}/data");
    let p = project_with_pipeline();
    let log = run_env(&p, &s3, &[&root, &cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let verify = ["verify", "pipeline.yaml", &root, &cache];
    let out = dflow_env(&p, &s3, &verify);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let blobs = s3.keys("cache/blobs");
    let lost = blobs.first().expect("a blob");
    std::fs::remove_file(s3.root.path().join(BUCKET).join(lost)).expect("lose a blob");
    let out = dflow_env(&p, &s3, &verify);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("is missing") && !text.contains(": 0 damaged"),
        "{text}"
    );
    // The run after it finds the local entry whole and publishes it again.
    let log = run_env(&p, &s3, &[&root, &cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed().is_empty(), "computed {:?}", log.computed());
    let out = dflow_env(&p, &s3, &verify);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

const HTML_PIPELINE: &str = r#"version: 1
name: html
nodes:
  pages:
    op: html_dir
    params: { path: faqs/pages, urls: faqs/urls.tsv }
  faqs:
    op: extract
    inputs: { pages: pages }
  per_page:
    op: sql
    inputs: { f: faqs }
    params: { query: "SELECT url, count(*) AS pairs FROM f GROUP BY url ORDER BY url" }
"#;

#[test]
fn a_directory_of_html_in_a_store_reads_as_on_local_disk() {
    let s3 = S3Server::start();
    let faqs = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/faqs");
    let mut stack = vec![faqs.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read").flatten() {
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(&faqs).expect("rel").to_path_buf();
                s3.put_file(&format!("data/faqs/{}", rel.display()), &e.path());
            }
        }
    }
    let local = Project::new("empty");
    local.write("pipeline.yaml", HTML_PIPELINE);
    common::copy_dir(&faqs, &local.path("faqs"));
    let remote = Project::new("empty");
    remote.write("pipeline.yaml", HTML_PIPELINE);
    let root = format!("--source-root=s3://{BUCKET}/data");
    let mirror = tempfile::tempdir().expect("tempdir");
    let run = |p: &Project, extra: &[&str]| {
        let mut args = vec!["run", "pipeline.yaml", "--log-format", "json"];
        args.extend_from_slice(extra);
        let mut c = command_env(p, &s3, &args);
        c.env("DFLOW_MIRROR_DIR", mirror.path());
        RunLog::from_output(&c.output().expect("run dflow"))
    };
    let log = run(&local, &[]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let log = run(&remote, &[&root]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed()["pages"].len() >= 6, "{:?}", log.computed());
    let q = "SELECT * FROM per_page";
    let rows = sql_env(&local, &s3, &[], q);
    assert!(rows.lines().count() > 1, "{rows}");
    assert_eq!(rows, sql_env(&remote, &s3, &[&root], q));
    assert_eq!(
        sql_env(&local, &s3, &[], "SELECT count(*) AS n FROM faqs"),
        sql_env(&remote, &s3, &[&root], "SELECT count(*) AS n FROM faqs")
    );
}

#[test]
fn published_folders_land_in_a_store_and_follow_the_artifact() {
    let s3 = S3Server::start();
    s3.register_client("publish-test");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = tempfile::tempdir().expect("tempdir");
    let ctx = dflow_engine::PlanContext {
        base_dir: base.path().to_path_buf(),
        source_root: None,
        node: "report".into(),
        runtime: runtime.handle().clone(),
        udfs: Arc::new(Vec::new()),
    };
    let artifact = tempfile::tempdir().expect("tempdir");
    std::fs::write(artifact.path().join("report.md"), "# v1").expect("write");
    std::fs::create_dir(artifact.path().join("charts")).expect("mkdir");
    std::fs::write(artifact.path().join("charts/a.svg"), "<svg/>").expect("write");
    let dest = "s3://publish-test/pub/report".to_string();
    dflow_engine::ops::export::publish_to(artifact.path(), &dest, &ctx).expect("publish");
    assert_eq!(
        s3.keys("pub"),
        [
            "pub/report/.dflow-export-report.json",
            "pub/report/charts/a.svg",
            "pub/report/report.md"
        ]
    );
    // The next artifact drops a chart: the store follows.
    std::fs::remove_file(artifact.path().join("charts/a.svg")).expect("remove");
    std::fs::write(artifact.path().join("report.md"), "# v2").expect("write");
    dflow_engine::ops::export::publish_to(artifact.path(), &dest, &ctx).expect("publish");
    assert_eq!(
        s3.keys("pub"),
        [
            "pub/report/.dflow-export-report.json",
            "pub/report/report.md"
        ]
    );
    let md = std::fs::read_to_string(s3.root.path().join(BUCKET).join("pub/report/report.md"))
        .expect("read");
    assert_eq!(md, "# v2");
    let err = dflow_engine::ops::export::publish_to(artifact.path(), "https://host/x", &ctx)
        .expect_err("http is read-only");
    assert!(err.to_string().contains("read-only"), "{err}");
}

#[test]
fn one_run_of_a_pipeline_at_a_time_holds_its_lease() {
    use dflow_engine::cache::lease::take;
    use object_store::{ObjectStoreExt, PutPayload};
    use std::time::Duration;

    let s3 = S3Server::start();
    s3.register_client("lease-test");
    let url = |name: &str| {
        ObjectUrl::parse(&format!("s3://lease-test/cache/leases/{name}.json")).expect("url")
    };
    let store = stores::store_for(&url("p")).expect("store");
    let quiet = |_: &str| {};
    let ttl = Duration::from_millis(900);

    let held = take(store.clone(), url("p"), ttl, false, &quiet).expect("first run takes it");
    // Renewed while held: still busy after more than its time to live.
    std::thread::sleep(Duration::from_millis(1500));
    let busy = take(store.clone(), url("p"), ttl, false, &quiet).expect_err("held");
    assert_eq!(busy.code(), "DF3005", "{busy}");
    assert!(busy.to_string().contains("pid"), "{busy}");
    // Another pipeline's runs do not wait for it.
    let other = take(store.clone(), url("q"), ttl, false, &quiet).expect("another pipeline");
    drop(other);
    // Let go: the next run takes it at once.
    drop(held);
    let next = take(store.clone(), url("p"), ttl, false, &quiet).expect("let go");
    drop(next);

    // A holder that died: its lease expires, then the next run takes it over.
    let dead = format!(
        r#"{{"owner":"a killed run","expires_unix_ms":{}}}"#,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            + 700
    );
    let path = url("p").object_path();
    stores::block_on({
        let store = store.clone();
        async move { store.put(&path, PutPayload::from(dead.into_bytes())).await }
    })
    .expect("runtime")
    .expect("put a dead holder's lease");
    let busy = take(store.clone(), url("p"), ttl, false, &quiet).expect_err("not yet expired");
    assert!(busy.to_string().contains("a killed run"), "{busy}");
    let waited = std::time::Instant::now();
    let taken = take(store.clone(), url("p"), ttl, true, &quiet).expect("taken over");
    assert!(waited.elapsed() < Duration::from_secs(5));
    drop(taken);
}

#[test]
fn a_listed_object_is_digested_again_without_a_head() {
    use dflow_engine::cache::StatCache;
    use dflow_engine::storage::{Location, list_matching};
    use std::sync::atomic::Ordering;

    // A store whose listing carries entity tags, as S3's, GCS's and Azure's
    // do (s3s-fs, the test S3 server, lists none): object_store's own
    // local-file store, counted through the wrapper.
    let root = tempfile::tempdir().expect("tempdir");
    for dir in ["release-1", "release-2"] {
        common::copy_dir(&sample(dir), &root.path().join("data").join(dir));
    }
    let local = object_store::local::LocalFileSystem::new_with_prefix(root.path()).expect("store");
    let counting = Arc::new(RacingStore {
        inner: Arc::new(local),
        rival: std::sync::Mutex::new(None),
        heads: Default::default(),
    });
    stores::register("s3://listed-test", counting.clone());
    let pattern = ObjectUrl::parse("s3://listed-test/data/release-*/*.warc.gz").expect("url");
    let digests = |stat: &StatCache| -> Vec<String> {
        list_matching(&pattern)
            .expect("list")
            .iter()
            .map(|f| {
                stat.digest(&Location::Object(f.url.clone()))
                    .expect("digest")
            })
            .collect()
    };
    let cache = tempfile::tempdir().expect("tempdir");
    // A first run digests every object (reading it once).
    let stat = StatCache::load(cache.path());
    let first = digests(&stat);
    stat.save().expect("save");
    assert_eq!(first.len(), 5);
    assert!(counting.heads.load(Ordering::SeqCst) > 0);
    // The next run lists again: the listing's sizes and tags show nothing
    // changed, so no object gets a HEAD.
    counting.heads.store(0, Ordering::SeqCst);
    let stat = StatCache::load(cache.path());
    assert_eq!(digests(&stat), first);
    assert_eq!(counting.heads.load(Ordering::SeqCst), 0);
}

#[test]
fn a_store_that_stops_mid_run_fails_it_and_the_rerun_resumes() {
    use std::io::{BufRead, BufReader};

    let mut s3 = S3Server::start();
    let cache = format!("--cache-dir=s3://{BUCKET}/cache");
    let p = project_with_pipeline();
    for dir in ["release-1", "release-2", "owi"] {
        common::copy_dir(&sample(dir), &p.path(&format!("sample/{dir}")));
    }
    let mut child = command_env(
        &p,
        &s3,
        &[
            "run",
            "pipeline.yaml",
            "--log-format",
            "json",
            "-j",
            "1",
            &cache,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("start the run");
    // The store goes away once `pages` is published; what comes after
    // cannot publish.
    let stdout = child.stdout.take().expect("stdout");
    let mut stopped = false;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the run's log");
        if !stopped
            && line.contains(r#""event":"node_finished""#)
            && line.contains(r#""node":"pages""#)
        {
            s3.stop();
            stopped = true;
        }
        lines.push(line);
    }
    let out = child.wait_with_output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stopped, "`pages` never finished: {stderr}");
    assert_ne!(
        out.status.code(),
        Some(0),
        "the run went on without its store"
    );
    assert!(stderr.contains("s3://bucket"), "{stderr}");
    let failed: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "node_failed")
        .collect();
    assert!(
        failed.iter().any(|e| e["code"] == "DF3009"),
        "{failed:?}\n{stderr}"
    );

    // Back again: the rerun waits for the lease the failed run could not
    // give back to expire (3 s here), finds `pages` published and goes on
    // from there.
    s3.restart();
    let log = run_env(&p, &s3, &[&cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(
        !log.computed().contains_key("pages"),
        "{:?}",
        log.computed()
    );
    assert_eq!(log.hits()["pages"].len(), 5, "{:?}", log.hits());
    // And another machine finds everything published.
    let other = project_with_pipeline();
    for dir in ["release-1", "release-2", "owi"] {
        common::copy_dir(&sample(dir), &other.path(&format!("sample/{dir}")));
    }
    let log = run_env(&other, &s3, &[&cache]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    assert!(log.computed().is_empty(), "{:?}", log.computed());
}

//! A real S3 server for tests: s3s-fs over a temporary directory, served
//! in the test process on a localhost port.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dflow_engine::storage::stores;

use crate::common::{Project, RunLog};
use object_store::aws::AmazonS3Builder;
use std::process::Output;

pub const ACCESS_KEY: &str = "dflow-test-access";
pub const SECRET_KEY: &str = "dflow-test-secret-do-not-print";
pub const BUCKET: &str = "bucket";

/// A real S3 server over a temporary directory (bucket = subdirectory),
/// served until dropped.
pub struct S3Server {
    pub root: tempfile::TempDir,
    pub endpoint: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3Server {
    pub fn start() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket");
        let (runtime, addr) = Self::serve(root.path(), "127.0.0.1:0");
        Self {
            root,
            endpoint: format!("http://{addr}"),
            runtime: Some(runtime),
        }
    }

    /// Serves the same objects at the same address again after [`stop`].
    pub fn restart(&mut self) {
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        let (runtime, _) = Self::serve(self.root.path(), &addr);
        self.runtime = Some(runtime);
    }

    pub fn serve(root: &Path, addr: &str) -> (tokio::runtime::Runtime, std::net::SocketAddr) {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto::Builder as ConnBuilder;
        use s3s::auth::SimpleAuth;
        use s3s::service::S3ServiceBuilder;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        // A restart may find the old socket still closing: try for a while.
        let mut tries = 0;
        let listener = loop {
            match runtime.block_on(tokio::net::TcpListener::bind(addr)) {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("binding {addr}: {e}"),
            }
        };
        let local = listener.local_addr().expect("addr");
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                // Without it small responses wait for delayed ACKs (40 ms).
                let _ = socket.set_nodelay(true);
                let service = service.clone();
                tokio::spawn(async move {
                    let builder = ConnBuilder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        (runtime, local)
    }

    /// Puts a local file at `key` (the server keeps objects as files).
    pub fn put_file(&self, key: &str, from: &Path) {
        let dest = self.root.path().join(BUCKET).join(key);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, dest).expect("copy");
    }

    /// The keys under `prefix` in the bucket.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let base = self.root.path().join(BUCKET);
        let mut out = Vec::new();
        let mut stack = vec![base.join(prefix)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().expect("type").is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(&base).expect("rel").to_path_buf();
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    /// The environment a `dflow` process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("DFLOW_STORE_RETRY_SECS", "2".into()),
            // A lease a run could not give back (its store was down) holds
            // the pipeline this long.
            ("DFLOW_LEASE_SECS", "3".into()),
        ]
    }

    /// A client for this server's bucket, registered in this process as the
    /// store `s3://{alias}` (each test its own alias: tests run side by
    /// side, each with its own server, and share the registry).
    pub fn register_client(&self, alias: &str) {
        stores::register(&format!("s3://{alias}"), self.client());
    }

    /// A client for this server's bucket.
    pub fn client(&self) -> Arc<dyn object_store::ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(BUCKET)
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .expect("client"),
        )
    }

    /// Stops serving: connections are refused from now on.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl S3Server {
    /// The sample's WARC releases and OWI shards, under `prefix` in the bucket.
    pub fn upload_sample(&self, prefix: &str) {
        for dir in ["release-1", "release-2", "owi/2026-11-01", "owi/2026-11-02"] {
            for f in std::fs::read_dir(sample(dir)).expect("sample").flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                self.put_file(&format!("{prefix}/sample/{dir}/{name}"), &f.path());
            }
        }
    }
}

/// A file or directory of the bundled sample web.
pub fn sample(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines/sample")
        .join(rel)
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `dflow ARGS` in project `p`, with the environment that reaches `s3`.
pub fn command_env(p: &Project, s3: &S3Server, args: &[&str]) -> std::process::Command {
    let mut c = p.command(args);
    c.envs(s3.env());
    c
}

pub fn dflow_env(p: &Project, s3: &S3Server, args: &[&str]) -> Output {
    command_env(p, s3, args).output().expect("run dflow")
}

pub fn run_env(p: &Project, s3: &S3Server, extra: &[&str]) -> RunLog {
    let mut args = vec!["run", "pipeline.yaml", "--log-format", "json"];
    args.extend_from_slice(extra);
    RunLog::from_output(&dflow_env(p, s3, &args))
}

pub fn sql_env(p: &Project, s3: &S3Server, extra: &[&str], query: &str) -> String {
    let mut args = vec!["sql", "pipeline.yaml", query, "--format", "csv"];
    args.extend_from_slice(extra);
    let out = dflow_env(p, s3, &args);
    assert!(
        out.status.success(),
        "dflow sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

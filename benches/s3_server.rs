//! A real S3-compatible server on localhost for benchmarks and manual
//! tries: s3s-fs over a directory (each subdirectory a bucket), with one
//! access key, serving until killed.
//!
//!     cargo run --example s3_server -- ROOT [PORT [FILE BUCKET/KEY]]
//!
//! With FILE, it first uploads FILE to BUCKET/KEY through the S3 API (a file
//! copied into ROOT by hand has no stored entity tag, and s3s-fs then
//! hashes the whole file for every ranged GET).
//!
//! Then point dflow at it:
//!
//!     AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=dflow \
//!     AWS_SECRET_ACCESS_KEY=dflow-secret AWS_REGION=us-east-1 dflow run ...

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = args.next().ok_or("usage: s3_server ROOT [PORT]")?;
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(8014);
    let upload = args.next().zip(args.next());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let fs = s3s_fs::FileSystem::new(&root).map_err(|e| format!("serving {root}: {e:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single("dflow", "dflow-secret"));
    let service = builder.build();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        println!("s3_server: http://{addr} serving {root}");
        let serving = tokio::spawn(serve(listener, service));
        if let Some((file, target)) = upload {
            put(&format!("http://{addr}"), &file, &target).await?;
            println!("s3_server: uploaded {file} to {target}");
        }
        serving.await??;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

async fn serve(
    listener: tokio::net::TcpListener,
    service: s3s::service::S3Service,
) -> Result<(), std::io::Error> {
    loop {
        let (socket, _) = listener.accept().await?;
        // Without it small responses wait for delayed ACKs (40 ms).
        socket.set_nodelay(true)?;
        let service = service.clone();
        tokio::spawn(async move {
            let _ = ConnBuilder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

async fn put(endpoint: &str, file: &str, target: &str) -> Result<(), Box<dyn std::error::Error>> {
    use object_store::{ObjectStoreExt, WriteMultipart};
    let (bucket, key) = target.split_once('/').ok_or("target is BUCKET/KEY")?;
    let client = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("dflow")
        .with_secret_access_key("dflow-secret")
        .build()?;
    let bytes = std::fs::read(file)?;
    let upload = client.put_multipart(&key.into()).await?;
    let mut writer = WriteMultipart::new(upload);
    writer.write(&bytes);
    writer.finish().await?;
    Ok(())
}

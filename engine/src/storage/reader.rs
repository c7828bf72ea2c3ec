//! Reading a file wherever it is: [`SourceFile`] is a local file or an
//! [`ObjectReader`], both `Read + Seek` and a Parquet [`ChunkReader`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::reader::{ChunkReader, Length};
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::task::JoinHandle;

use crate::error::{Error, Result, ResultExt};
use crate::storage::location::{Location, ObjectUrl};
use crate::storage::stores::{self, block_on, store_error};

/// Bytes fetched per ranged GET. Two blocks (the current one and the one
/// read ahead) are all an [`ObjectReader`] holds, whatever the object's size.
pub const BLOCK_BYTES: u64 = 8 << 20;

type Pending = JoinHandle<object_store::Result<Bytes>>;

/// Reads one object with ranged GETs: `Read + Seek` over a block buffer,
/// fetching the next block in the background while the current one is read.
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    url: ObjectUrl,
    size: u64,
    e_tag: Option<String>,
    pos: u64,
    buf: Bytes,
    buf_start: u64,
    block: u64,
    ahead: Option<(u64, Pending)>,
}

impl ObjectReader {
    /// Opens the object at `url` (one HEAD for its size).
    pub fn open(url: &ObjectUrl) -> Result<Self> {
        let store = stores::store_for(url)?;
        let path = url.object_path();
        let head_store = store.clone();
        let meta = block_on(async move { head_store.head(&path).await })?
            .map_err(|e| store_error(e, format_args!("reading {url}")))?;
        let mut reader = Self::with_size(store, url.clone(), meta.size);
        reader.e_tag = meta.e_tag;
        Ok(reader)
    }

    /// A reader of an object whose size is known (from a listing).
    pub fn with_size(store: Arc<dyn ObjectStore>, url: ObjectUrl, size: u64) -> Self {
        Self {
            store,
            url,
            size,
            e_tag: None,
            pos: 0,
            buf: Bytes::new(),
            buf_start: 0,
            block: BLOCK_BYTES,
            ahead: None,
        }
    }

    /// Sets the bytes fetched per request (tests; at least 1).
    pub fn with_block(mut self, block: u64) -> Self {
        self.block = block.max(1);
        self
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The store's entity tag of the object, when opened with
    /// [`ObjectReader::open`] and the store gives one.
    pub fn e_tag(&self) -> Option<&str> {
        self.e_tag.as_deref()
    }

    /// The object's URL.
    pub fn url(&self) -> &ObjectUrl {
        &self.url
    }

    fn request(&self, start: u64) -> Result<Pending> {
        let end = (start + self.block).min(self.size);
        let store = self.store.clone();
        let path = self.url.object_path();
        stores::spawn(async move { store.get_range(&path, start..end).await })
    }

    /// Makes the block holding `self.pos` current.
    fn fill(&mut self) -> io::Result<()> {
        let start = self.pos;
        let pending = match self.ahead.take() {
            Some((at, pending)) if at == start => pending,
            other => {
                if let Some((_, stale)) = other {
                    stale.abort();
                }
                self.request(start).map_err(io::Error::other)?
            }
        };
        let bytes = futures::executor::block_on(pending)
            .map_err(|e| io::Error::other(format!("reading {}: {e}", self.url)))?
            .map_err(|e| io::Error::other(store_error(e, format_args!("reading {}", self.url))))?;
        if bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ended at byte {start} of {}", self.url, self.size),
            ));
        }
        self.buf_start = start;
        self.buf = bytes;
        let next = start + self.buf.len() as u64;
        if next < self.size {
            self.ahead = Some((next, self.request(next).map_err(io::Error::other)?));
        }
        Ok(())
    }

    /// `len` bytes from `start` in one request (Parquet column chunks).
    pub fn get_bytes(&self, start: u64, len: usize) -> Result<Bytes> {
        let end = start.saturating_add(len as u64).min(self.size);
        let store = self.store.clone();
        let path = self.url.object_path();
        block_on(async move { store.get_range(&path, start..end).await })?
            .map_err(|e| store_error(e, format_args!("reading {}", self.url)))
    }

    fn reopen_at(&self, start: u64) -> Self {
        let mut r = Self::with_size(self.store.clone(), self.url.clone(), self.size);
        r.block = self.block;
        r.pos = start;
        r
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        if let Some((_, pending)) = self.ahead.take() {
            pending.abort();
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let in_buf =
            self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !in_buf {
            self.fill()?;
        }
        let offset = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - offset);
        out[..n].copy_from_slice(&self.buf[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            ));
        };
        self.pos = target;
        Ok(target)
    }
}

/// A file to read, local or in a store.
pub enum SourceFile {
    /// A local file and its size.
    Local(File, u64),
    /// An object.
    Object(ObjectReader),
}

impl SourceFile {
    /// Opens `location` for reading.
    pub fn open(location: &Location) -> Result<Self> {
        match location {
            Location::Local(path) => {
                let file = File::open(path).context(|| format!("opening {}", path.display()))?;
                let len = file
                    .metadata()
                    .context(|| format!("reading {}", path.display()))?
                    .len();
                Ok(SourceFile::Local(file, len))
            }
            Location::Object(url) => ObjectReader::open(url).map(SourceFile::Object),
        }
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            SourceFile::Local(_, len) => *len,
            SourceFile::Object(r) => r.size(),
        }
    }
}

impl Read for SourceFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            SourceFile::Local(f, _) => f.read(out),
            SourceFile::Object(r) => r.read(out),
        }
    }
}

impl Seek for SourceFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            SourceFile::Local(f, _) => f.seek(to),
            SourceFile::Object(r) => r.seek(to),
        }
    }
}

impl Length for SourceFile {
    fn len(&self) -> u64 {
        self.size()
    }
}

impl ChunkReader for SourceFile {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        match self {
            SourceFile::Local(f, _) => {
                let mut f = f.try_clone()?;
                f.seek(SeekFrom::Start(start))?;
                Ok(Box::new(f))
            }
            SourceFile::Object(r) => Ok(Box::new(r.reopen_at(start))),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        match self {
            SourceFile::Local(f, _) => {
                let mut f = f.try_clone()?;
                f.seek(SeekFrom::Start(start))?;
                let mut buf = vec![0; length];
                f.read_exact(&mut buf)?;
                Ok(buf.into())
            }
            SourceFile::Object(r) => r
                .get_bytes(start, length)
                .map_err(|e: Error| ParquetError::External(Box::new(e))),
        }
    }
}

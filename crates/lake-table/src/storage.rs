//! The lake's storage: every read and write of the lake goes through
//! [`Lake`], which wraps an `object_store` store behind a URL.
//!
//! The API is synchronous because the layers are CPU-bound Polars code; the
//! object store's async calls run on a small private Tokio runtime (or on the
//! caller's runtime when there is one).

use std::any::Any;
use std::future::Future;
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::Transient;
use crate::layer::Layer;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lake-io")
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("cannot start the lake's I/O runtime: {err}"))
});

/// Runs a future to completion from synchronous code, on the caller's Tokio
/// runtime when there is one (from a blocking-capable context) or on the
/// lake's own.
pub fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(future)),
        Err(_) => RUNTIME.block_on(future),
    }
}

/// Enters the lake's runtime, for calls that spawn tasks without awaiting
/// them (object_store's multipart upload starts each part as a task).
fn enter_runtime() -> tokio::runtime::EnterGuard<'static> {
    RUNTIME.handle().enter()
}

/// One object of the lake, as listed.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Key relative to its layer root, e.g. `orders/2026-11-26/_SUCCESS`.
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    /// The store's version tag of the object, when it gives one: it changes
    /// with every write, where the modification time may not (S3 keeps
    /// whole seconds).
    pub e_tag: Option<String>,
}

impl ObjectInfo {
    /// What identifies this write of the object: its version tag, else its
    /// modification time and size.
    pub fn version_tag(&self) -> String {
        self.e_tag.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                self.last_modified.timestamp_nanos_opt().unwrap_or(0),
                self.size
            )
        })
    }
}

/// Handle on the lake's storage. Cheap to clone.
#[derive(Clone)]
pub struct Lake {
    inner: Arc<LakeInner>,
    /// What the table layer keeps on this handle and its clones (its
    /// snapshot cache, see [`crate::snapshot_cache`]): opaque to storage,
    /// which holds it only.
    attached: Option<Arc<dyn Any + Send + Sync>>,
}

struct LakeInner {
    /// Where each layer lives (index: position in [`Layer::ALL`]).
    roots: Vec<Root>,
    /// The lake's URL as shown to people (never holds credentials).
    display: String,
    /// Set for a lake on the local filesystem.
    local_root: Option<PathBuf>,
    /// Set for a lake on S3: how the table scans (Polars) reach it.
    s3: Option<crate::s3::S3Settings>,
}

/// Where one layer lives: a store and a key prefix inside it.
struct Root {
    store: Arc<dyn ObjectStore>,
    /// Key prefix of the layer in `store` (no trailing slash; may be empty).
    prefix: String,
    /// How the layer's location is shown, e.g. `s3://bronze` or `/data/lake/bronze`.
    display: String,
    /// The layer root as a URL ending in `/` (`file:///data/lake/bronze/`,
    /// `s3://bronze/`): the base of its tables' locations in Delta's log.
    url: url::Url,
    /// A store rooted where `url`'s path starts (the file system's root, or
    /// the bucket): Delta resolves table URLs against it.
    url_store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lake({})", self.inner.display)
    }
}

/// `s3://bucket/prefix/`, the URL of a layer root on S3.
fn s3_url(bucket: &str, prefix: &str) -> Result<url::Url> {
    let text = format!("s3://{}/", join(bucket, prefix.trim_matches('/')));
    url::Url::parse(&text).with_context(|| format!("{text} is not a valid S3 location"))
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{key}"),
    }
}

impl Lake {
    /// Opens the lake at `url`: a filesystem path, a `file://` URL, or
    /// `s3://` (one bucket per layer: bronze, silver, gold, checkpoints; run
    /// manifests in gold under `_runs/`) or `s3://BUCKET[/PREFIX]` (every
    /// layer under one bucket). S3 is configured by the standard AWS
    /// variables (see [`crate::s3`]).
    pub fn open(url: &str) -> Result<Lake> {
        let url = url.trim();
        if url.is_empty() {
            bail!("the lake URL is empty (set --lake or LAKE_URL)");
        }
        if let Some(rest) = url.strip_prefix("file://") {
            return Self::open_local(FsPath::new(rest));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return Self::open_s3(rest, crate::s3::S3Settings::from_env()?);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            bail!(
                "unsupported lake URL scheme {scheme:?} in {url:?} (expected a path, file:// or s3://)"
            );
        }
        Self::open_local(FsPath::new(url))
    }

    /// Opens a lake that must already be there: for the commands that
    /// only read, which never create one (a mistyped local folder is an
    /// error, not a new empty lake). On S3, as [`Lake::open`].
    pub fn open_existing(url: &str) -> Result<Lake> {
        let trimmed = url.trim();
        let local = match trimmed.strip_prefix("file://") {
            Some(rest) => Some(rest),
            None if !trimmed.is_empty() && !trimmed.contains("://") => Some(trimmed),
            None => None,
        };
        if let Some(path) = local
            && !FsPath::new(path).is_dir()
        {
            bail!("the lake {path} does not exist (no such folder)");
        }
        Self::open(url)
    }

    fn open_local(root: &FsPath) -> Result<Lake> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the lake folder {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving the lake folder {}", root.display()))?;
        let store: Arc<dyn ObjectStore> = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .with_context(|| format!("opening the lake folder {}", root.display()))?
                .with_automatic_cleanup(true),
        );
        let display = root.display().to_string();
        let file_system: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        let roots = Layer::ALL
            .iter()
            .map(|layer| {
                let folder = root.join(layer.name());
                let url = url::Url::from_directory_path(&folder).map_err(|()| {
                    anyhow!(
                        "the lake folder {} is not an absolute path",
                        folder.display()
                    )
                })?;
                Ok(Root {
                    store: store.clone(),
                    prefix: layer.name().to_string(),
                    display: format!("{display}/{}", layer.name()),
                    url,
                    url_store: file_system.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Lake {
            inner: Arc::new(LakeInner {
                roots,
                display,
                local_root: Some(root),
                s3: None,
            }),
            attached: None,
        })
    }

    /// Opens an `s3://` lake with explicit settings (instead of the
    /// environment's).
    pub fn open_s3_with(url: &str, settings: crate::s3::S3Settings) -> Result<Lake> {
        let rest = url
            .trim()
            .strip_prefix("s3://")
            .ok_or_else(|| anyhow!("not an s3:// URL: {url}"))?;
        Self::open_s3(rest, settings)
    }

    fn open_s3(rest: &str, settings: crate::s3::S3Settings) -> Result<Lake> {
        let rest = rest.trim_matches('/');
        let (roots, display) = if rest.is_empty() {
            let mut stores = std::collections::BTreeMap::new();
            let roots = Layer::ALL
                .iter()
                .map(|layer| {
                    let (bucket, prefix) = match layer {
                        Layer::Runs => ("gold", "_runs"),
                        other => (other.name(), ""),
                    };
                    let store = match stores.get(bucket) {
                        Some(store) => Arc::clone(store),
                        None => {
                            let store: Arc<dyn ObjectStore> = Arc::new(settings.store(bucket)?);
                            stores.insert(bucket, store.clone());
                            store
                        }
                    };
                    Ok(Root {
                        url: s3_url(bucket, prefix)?,
                        url_store: store.clone(),
                        store,
                        prefix: prefix.to_string(),
                        display: format!("s3://{}", join(bucket, prefix)),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (roots, format!("s3:// at {}", settings.endpoint_display()))
        } else {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let store: Arc<dyn ObjectStore> = Arc::new(settings.store(bucket)?);
            let roots = Layer::ALL
                .iter()
                .map(|layer| {
                    let prefix = join(prefix.trim_matches('/'), layer.name());
                    Ok(Root {
                        store: store.clone(),
                        display: format!("s3://{bucket}/{prefix}"),
                        url: s3_url(bucket, &prefix)?,
                        url_store: store.clone(),
                        prefix,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (
                roots,
                format!("s3://{rest} at {}", settings.endpoint_display()),
            )
        };
        Ok(Lake {
            inner: Arc::new(LakeInner {
                roots,
                display,
                local_root: None,
                s3: Some(settings),
            }),
            attached: None,
        })
    }

    /// The same lake, through a handle carrying `state` (shared by its
    /// clones, replacing what this handle carries).
    pub(crate) fn with_attached(&self, state: Arc<dyn Any + Send + Sync>) -> Lake {
        Lake {
            inner: self.inner.clone(),
            attached: Some(state),
        }
    }

    /// What this handle carries, when it is a `T`.
    pub(crate) fn attached<T: Any>(&self) -> Option<&T> {
        self.attached.as_deref()?.downcast_ref()
    }

    /// The lake's location as shown to people.
    pub fn url(&self) -> &str {
        &self.inner.display
    }

    /// The URL of a folder of a layer, ending in `/` (a table's location).
    pub fn folder_url(&self, layer: Layer, key: &str) -> Result<url::Url> {
        let key = key.trim_matches('/');
        let base = &self.root(layer).url;
        if key.is_empty() {
            return Ok(base.clone());
        }
        base.join(&format!("{key}/"))
            .with_context(|| format!("{key} is not a valid folder name under {base}"))
    }

    /// The store that [`Lake::folder_url`]'s URLs resolve against.
    pub fn url_store(&self, layer: Layer) -> Arc<dyn ObjectStore> {
        self.root(layer).url_store.clone()
    }

    /// Where a scan engine (Polars) finds the object at `key`: a local path
    /// or an `s3://` URL.
    pub fn scan_location(&self, layer: Layer, key: &str) -> String {
        match self.local_path(layer, key) {
            Some(path) => path.display().to_string(),
            None => format!("{}{}", self.root(layer).url, key.trim_start_matches('/')),
        }
    }

    /// The S3 settings of a lake on S3.
    pub fn s3_settings(&self) -> Option<&crate::s3::S3Settings> {
        self.inner.s3.as_ref()
    }

    fn root(&self, layer: Layer) -> &Root {
        let index = Layer::ALL.iter().position(|l| *l == layer).unwrap_or(0);
        &self.inner.roots[index]
    }

    fn store(&self, layer: Layer) -> &Arc<dyn ObjectStore> {
        &self.root(layer).store
    }

    /// Human-readable location of a key, for messages.
    pub fn describe(&self, layer: Layer, key: &str) -> String {
        join(&self.root(layer).display, key)
    }

    fn path(&self, layer: Layer, key: &str) -> Path {
        Path::from(join(&self.root(layer).prefix, key))
    }

    fn layer_root(&self, layer: Layer) -> Path {
        Path::from(self.root(layer).prefix.as_str())
    }

    fn relative_key(&self, layer: Layer, path: &Path) -> String {
        let root = self.layer_root(layer);
        path.prefix_match(&root)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| path.to_string())
    }

    /// Writes `bytes` at `key`, replacing what was there, in one atomic put.
    pub fn put(&self, layer: Layer, key: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(layer, key);
        block_on(self.store(layer).put(&path, PutPayload::from(bytes)))
            .map_err(|err| self.storage_error(err, "writing", layer, key))?;
        Ok(())
    }

    /// Writes `bytes` at `key` only if no object is there (an atomic
    /// create); `false` when one already exists.
    pub fn create(&self, layer: Layer, key: &str, bytes: Bytes) -> Result<bool> {
        let path = self.path(layer, key);
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match block_on(
            self.store(layer)
                .put_opts(&path, PutPayload::from(bytes), options),
        ) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(err) => Err(self.storage_error(err, "creating", layer, key)),
        }
    }

    /// Size and modification time of the object at `key`, if any.
    pub fn head(&self, layer: Layer, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path(layer, key);
        match block_on(self.store(layer).head(&path)) {
            Ok(meta) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: meta.size,
                last_modified: meta.last_modified,
                e_tag: meta.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(self.storage_error(err, "inspecting", layer, key)),
        }
    }

    /// Reads the object at `key`, or `None` when there is none.
    pub fn get(&self, layer: Layer, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(layer, key);
        let result = block_on(async {
            let got = self.store(layer).get(&path).await?;
            got.bytes().await
        });
        match result {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(self.storage_error(err, "reading", layer, key)),
        }
    }

    /// The local file holding `key`, for a lake on the local filesystem.
    pub fn local_path(&self, layer: Layer, key: &str) -> Option<PathBuf> {
        self.inner
            .local_root
            .as_ref()
            .map(|root| root.join(join(&self.root(layer).prefix, key)))
    }

    /// Lists every object under `prefix` (a folder key such as
    /// `orders/2026-11-26`), recursively.
    pub fn list(&self, layer: Layer, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let path = self.path(layer, prefix.trim_end_matches('/'));
        let metas: Vec<_> = block_on(self.store(layer).list(Some(&path)).try_collect())
            .map_err(|err| self.storage_error(err, "listing", layer, prefix))?;
        Ok(self.object_infos(layer, metas))
    }

    /// Lists the objects directly in the folder `prefix`, not those of its
    /// sub-folders.
    pub fn list_files(&self, layer: Layer, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let path = self.path(layer, prefix.trim_end_matches('/'));
        let listing = block_on(self.store(layer).list_with_delimiter(Some(&path)))
            .map_err(|err| self.storage_error(err, "listing", layer, prefix))?;
        Ok(self.object_infos(layer, listing.objects))
    }

    fn object_infos(&self, layer: Layer, metas: Vec<object_store::ObjectMeta>) -> Vec<ObjectInfo> {
        let mut objects: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|meta| ObjectInfo {
                key: self.relative_key(layer, &meta.location),
                size: meta.size,
                last_modified: meta.last_modified,
                e_tag: meta.e_tag,
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        objects
    }

    /// Names of the immediate sub-folders of `prefix` (empty for the layer root).
    pub fn list_dirs(&self, layer: Layer, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.trim_end_matches('/');
        let path = if prefix.is_empty() {
            self.layer_root(layer)
        } else {
            self.path(layer, prefix)
        };
        let listing = block_on(self.store(layer).list_with_delimiter(Some(&path)))
            .map_err(|err| self.storage_error(err, "listing", layer, prefix))?;
        let mut dirs: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Deletes the object at `key`; deleting a missing object is not an error.
    pub fn delete(&self, layer: Layer, key: &str) -> Result<()> {
        let path = self.path(layer, key);
        match block_on(self.store(layer).delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(self.storage_error(err, "deleting", layer, key)),
        }
    }

    /// Opens a streaming writer for a (possibly large) object: its bytes go
    /// out in bounded parts and the object appears only on
    /// [`ObjectWriter::finish`].
    pub fn writer(&self, layer: Layer, key: &str) -> Result<ObjectWriter> {
        let path = self.path(layer, key);
        let upload = block_on(self.store(layer).put_multipart(&path))
            .map_err(|err| self.storage_error(err, "starting the upload of", layer, key))?;
        Ok(ObjectWriter {
            state: Arc::new(Mutex::new(WriterState {
                upload: Some(WriteMultipart::new(upload)),
                written: 0,
            })),
            description: self.describe(layer, key),
        })
    }

    fn storage_error(
        &self,
        err: object_store::Error,
        verb: &str,
        layer: Layer,
        key: &str,
    ) -> anyhow::Error {
        let what = format!("{verb} {}", self.describe(layer, key));
        let transient = crate::error::may_pass_when_retried(&err);
        let err = anyhow!("{err}").context(what);
        if transient {
            err.context(Transient("storage error".into()))
        } else {
            err
        }
    }
}

struct WriterState {
    upload: Option<WriteMultipart>,
    written: u64,
}

/// Streaming writer of one object (see [`Lake::writer`]). Clones share the
/// same upload, so a Parquet writer can own one clone while the caller keeps
/// another to finish the upload. Dropped without `finish`, the upload is
/// aborted and nothing becomes visible.
#[derive(Clone)]
pub struct ObjectWriter {
    state: Arc<Mutex<WriterState>>,
    description: String,
}

/// Parts uploaded concurrently while a writer streams.
const UPLOAD_CONCURRENCY: usize = 4;

impl ObjectWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.state.lock().map(|s| s.written).unwrap_or(0)
    }

    /// Completes the upload; the object becomes visible. Returns its size.
    pub fn finish(&self) -> Result<u64> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| anyhow!("writer of {} poisoned", self.description))?;
        let upload = state
            .upload
            .take()
            .ok_or_else(|| anyhow!("writer of {} already finished", self.description))?;
        block_on(upload.finish()).map_err(|err| {
            anyhow!("{err}").context(format!("completing the upload of {}", self.description))
        })?;
        Ok(state.written)
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("object writer poisoned"))?;
        let upload = state
            .upload
            .as_mut()
            .ok_or_else(|| std::io::Error::other("object writer already finished"))?;
        block_on(upload.wait_for_capacity(UPLOAD_CONCURRENCY)).map_err(std::io::Error::other)?;
        let _runtime = enter_runtime();
        upload.write(buf);
        state.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for WriterState {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Best effort: an aborted upload leaves nothing visible either way.
            let _ = block_on(upload.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn streaming_writer_uploads_many_parts_and_shows_nothing_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        // 12 MiB in 64 KiB writes: several multipart parts.
        let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
        let mut writer = lake.writer(Layer::Bronze, "t/2026-01-01/big.bin").unwrap();
        for _ in 0..192 {
            writer.write_all(&chunk).unwrap();
        }
        assert_eq!(
            lake.get(Layer::Bronze, "t/2026-01-01/big.bin").unwrap(),
            None
        );
        assert_eq!(writer.finish().unwrap(), 192 * 65_536);
        let bytes = lake
            .get(Layer::Bronze, "t/2026-01-01/big.bin")
            .unwrap()
            .unwrap();
        assert_eq!(bytes.len(), 192 * 65_536);
        assert!(bytes.chunks(65_536).all(|c| c == chunk.as_slice()));
    }

    #[test]
    fn list_files_stays_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert!(lake.list_files(Layer::Checkpoints, "q").unwrap().is_empty());
        for key in ["q/a.ckpt", "q/b.ckpt", "q/closed/p-0/x.win", "qq/c.ckpt"] {
            lake.put(Layer::Checkpoints, key, Bytes::from_static(b"x"))
                .unwrap();
        }
        let keys =
            |objects: Vec<ObjectInfo>| objects.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(lake.list_files(Layer::Checkpoints, "q").unwrap()),
            ["q/a.ckpt", "q/b.ckpt"]
        );
        assert_eq!(
            keys(lake.list(Layer::Checkpoints, "q").unwrap()),
            ["q/a.ckpt", "q/b.ckpt", "q/closed/p-0/x.win"]
        );
    }

    #[test]
    fn create_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert!(
            lake.create(Layer::Gold, "t/_LOCK", Bytes::from_static(b"a"))
                .unwrap()
        );
        assert!(
            !lake
                .create(Layer::Gold, "t/_LOCK", Bytes::from_static(b"b"))
                .unwrap()
        );
        assert_eq!(
            lake.get(Layer::Gold, "t/_LOCK").unwrap().unwrap(),
            Bytes::from_static(b"a")
        );
        assert_eq!(lake.head(Layer::Gold, "t/_LOCK").unwrap().unwrap().size, 1);
        assert!(lake.head(Layer::Gold, "t/none").unwrap().is_none());
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        {
            let mut writer = lake.writer(Layer::Silver, "t/x.bin").unwrap();
            writer.write_all(&[1u8; 6 << 20]).unwrap();
        }
        assert_eq!(lake.get(Layer::Silver, "t/x.bin").unwrap(), None);
        assert!(lake.list(Layer::Silver, "t").unwrap().is_empty());
    }
}

//! The teaching project in IndexedDB (rexie: promise-based IndexedDB without hand-kept
//! callbacks), so a reload, a closed tab or a crash loses nothing:
//!
//! - `meta`: the classes and the next photo id (one JSON record);
//! - `photos`: per photo its class, name, content hash, the backbone that computed its
//!   features, the 2048 features and a small JPEG thumbnail (about 12 KB in all);
//! - `crops`: the 224 x 224 crop the backbone saw, as PNG (lossless: features recomputed
//!   from it for a new backbone equal what adding the photo again would give), read only then;
//! - `heads`: the last head taught here, its report and the photos it was taught on.

use js_sys::{Object, Reflect, Uint8Array};
use rexie::{ObjectStore, Rexie, TransactionMode};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::weights::bundle::{f32_bytes, f32_from_bytes};

const DATABASE: &str = "lucy-teach";
const META: &str = "meta";
const PHOTOS: &str = "photos";
const CROPS: &str = "crops";
const HEADS: &str = "heads";
const PROJECT_KEY: &str = "project";
const TAUGHT_KEY: &str = "taught";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassRecord {
    pub id: u32,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub classes: Vec<ClassRecord>,
    pub next_id: u32,
}

/// One photo as kept (its crop is stored apart).
pub struct PhotoRecord {
    pub id: u32,
    pub class: u32,
    pub name: String,
    pub hash: String,
    pub backbone: String,
    pub features: Vec<f32>,
    pub thumbnail: Vec<u8>,
}

/// The last head taught in the page.
pub struct HeadRecord {
    pub head: Vec<u8>,
    /// `fit::Taught`, as JSON.
    pub taught: String,
    /// The photos it was taught on, in the lesson's order (for its validation indices).
    pub photos: Vec<u32>,
    /// `fit::Lesson` as JSON, and the backbone whose features it used: with the photos'
    /// features, the project file again after a reload.
    pub lesson: String,
    pub backbone: String,
}

#[derive(Default)]
pub struct Saved {
    pub meta: Option<Meta>,
    pub photos: Vec<PhotoRecord>,
    pub head: Option<HeadRecord>,
    /// Photo records that did not read back (left out).
    pub unreadable: usize,
}

pub struct Store {
    db: Rexie,
}

/// Why a write failed, in words; `full` when the browser's storage quota is the reason.
#[derive(Debug)]
pub struct StoreError {
    pub message: String,
    pub full: bool,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn store_error(e: rexie::Error) -> StoreError {
    // rexie's own Display is only "idb error"; the IndexedDB error inside says what happened.
    let message = match e {
        rexie::Error::IdbError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    let full = message.contains("Quota") || message.contains("quota");
    StoreError { message, full }
}

fn set(object: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &key.into(), value);
}

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn bytes(value: JsValue) -> Vec<u8> {
    value
        .dyn_into::<Uint8Array>()
        .map(|a| a.to_vec())
        .unwrap_or_default()
}

impl Store {
    pub async fn open() -> Result<Self, StoreError> {
        let db = Rexie::builder(DATABASE)
            .version(1)
            .add_object_store(ObjectStore::new(META))
            .add_object_store(ObjectStore::new(PHOTOS).key_path("id"))
            .add_object_store(ObjectStore::new(CROPS))
            .add_object_store(ObjectStore::new(HEADS))
            .build()
            .await
            .map_err(store_error)?;
        Ok(Self { db })
    }

    /// Everything but the crops. Records that do not read back are left out (and reported).
    pub async fn load(&self) -> Result<Saved, StoreError> {
        let tx = self
            .db
            .transaction(&[META, PHOTOS, HEADS], TransactionMode::ReadOnly)
            .map_err(store_error)?;
        let meta = tx
            .store(META)
            .map_err(store_error)?
            .get(PROJECT_KEY.into())
            .await
            .map_err(store_error)?
            .and_then(|v| v.as_string())
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| StoreError {
                message: format!("its classes do not read back ({e})"),
                full: false,
            })?;
        let records = tx
            .store(PHOTOS)
            .map_err(store_error)?
            .get_all(None, None)
            .await
            .map_err(store_error)?;
        let total = records.len();
        let photos: Vec<PhotoRecord> = records
            .into_iter()
            .filter_map(|v| {
                Some(PhotoRecord {
                    id: get(&v, "id").as_f64()? as u32,
                    class: get(&v, "class").as_f64()? as u32,
                    name: get(&v, "name").as_string()?,
                    hash: get(&v, "hash").as_string()?,
                    backbone: get(&v, "backbone").as_string()?,
                    features: f32_from_bytes(&bytes(get(&v, "features"))),
                    thumbnail: bytes(get(&v, "thumbnail")),
                })
            })
            .filter(|p| p.features.len() == crate::model::FEATURES)
            .collect();
        let head = tx
            .store(HEADS)
            .map_err(store_error)?
            .get(TAUGHT_KEY.into())
            .await
            .map_err(store_error)?
            .and_then(|v| {
                Some(HeadRecord {
                    head: bytes(get(&v, "head")),
                    taught: get(&v, "taught").as_string()?,
                    photos: serde_json::from_str(&get(&v, "photos").as_string()?).ok()?,
                    lesson: get(&v, "lesson").as_string()?,
                    backbone: get(&v, "backbone").as_string()?,
                })
            });
        tx.done().await.map_err(store_error)?;
        Ok(Saved {
            meta,
            unreadable: total - photos.len(),
            photos,
            head,
        })
    }

    pub async fn save_meta(&self, meta: &Meta) -> Result<(), StoreError> {
        let json = serde_json::to_string(meta).expect("meta serialises");
        let tx = self
            .db
            .transaction(&[META], TransactionMode::ReadWrite)
            .map_err(store_error)?;
        tx.store(META)
            .map_err(store_error)?
            .put(&json.into(), Some(&PROJECT_KEY.into()))
            .await
            .map_err(store_error)?;
        tx.done().await.map_err(store_error).map(drop)
    }

    /// A photo and (when given) its crop, in one transaction: both or neither.
    pub async fn put_photo(
        &self,
        photo: &PhotoRecord,
        crop_png: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let record = Object::new();
        set(&record, "id", &photo.id.into());
        set(&record, "class", &photo.class.into());
        set(&record, "name", &photo.name.as_str().into());
        set(&record, "hash", &photo.hash.as_str().into());
        set(&record, "backbone", &photo.backbone.as_str().into());
        set(
            &record,
            "features",
            &Uint8Array::from(&f32_bytes(&photo.features)[..]),
        );
        set(
            &record,
            "thumbnail",
            &Uint8Array::from(&photo.thumbnail[..]),
        );
        let tx = self
            .db
            .transaction(&[PHOTOS, CROPS], TransactionMode::ReadWrite)
            .map_err(store_error)?;
        tx.store(PHOTOS)
            .map_err(store_error)?
            .put(&record, None)
            .await
            .map_err(store_error)?;
        if let Some(png) = crop_png {
            tx.store(CROPS)
                .map_err(store_error)?
                .put(&Uint8Array::from(png).into(), Some(&photo.id.into()))
                .await
                .map_err(store_error)?;
        }
        tx.done().await.map_err(store_error).map(drop)
    }

    pub async fn delete_photo(&self, id: u32) -> Result<(), StoreError> {
        let tx = self
            .db
            .transaction(&[PHOTOS, CROPS], TransactionMode::ReadWrite)
            .map_err(store_error)?;
        for store in [PHOTOS, CROPS] {
            tx.store(store)
                .map_err(store_error)?
                .delete(id.into())
                .await
                .map_err(store_error)?;
        }
        tx.done().await.map_err(store_error).map(drop)
    }

    /// The crop kept for a photo (PNG), if any.
    pub async fn crop(&self, id: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self
            .db
            .transaction(&[CROPS], TransactionMode::ReadOnly)
            .map_err(store_error)?;
        let crop = tx
            .store(CROPS)
            .map_err(store_error)?
            .get(id.into())
            .await
            .map_err(store_error)?
            .map(bytes);
        tx.done().await.map_err(store_error)?;
        Ok(crop)
    }

    pub async fn put_head(&self, head: &HeadRecord) -> Result<(), StoreError> {
        let record = Object::new();
        set(&record, "head", &Uint8Array::from(&head.head[..]));
        set(&record, "taught", &head.taught.as_str().into());
        let photos = serde_json::to_string(&head.photos).expect("ids serialise");
        set(&record, "photos", &photos.into());
        set(&record, "lesson", &head.lesson.as_str().into());
        set(&record, "backbone", &head.backbone.as_str().into());
        let tx = self
            .db
            .transaction(&[HEADS], TransactionMode::ReadWrite)
            .map_err(store_error)?;
        tx.store(HEADS)
            .map_err(store_error)?
            .put(&record, Some(&TAUGHT_KEY.into()))
            .await
            .map_err(store_error)?;
        tx.done().await.map_err(store_error).map(drop)
    }

    /// Everything, in one transaction.
    pub async fn clear(&self) -> Result<(), StoreError> {
        let tx = self
            .db
            .transaction(&[META, PHOTOS, CROPS, HEADS], TransactionMode::ReadWrite)
            .map_err(store_error)?;
        for store in [META, PHOTOS, CROPS, HEADS] {
            tx.store(store)
                .map_err(store_error)?
                .clear()
                .await
                .map_err(store_error)?;
        }
        tx.done().await.map_err(store_error).map(drop)
    }
}

//! Deletion vectors: the Delta protocol's merge-on-read. A merge that replaces a few rows of a
//! large file marks those rows deleted (a bitmap of row positions in the file) instead of
//! rewriting the file. lakeflow writes them only for tables whose `delta.enableDeletionVectors`
//! property is true; copy-on-write stays the default.
//!
//! On disk (the protocol's "Deletion Vector Format"): a file `deletion_vector_<uuid>.bin` at the
//! table root holds a version byte (1), then per vector its size (u32 big endian, magic and
//! bitmap), the magic number (u32 little endian), the bitmap (a 64-bit Roaring bitmap in its
//! portable serialization) and a CRC-32 of magic and bitmap (u32 big endian). A descriptor in
//! the log names the file by its UUID in Z85 and the vector by its offset.
//!
//! Readers that are not Delta-aware (lakeflow's catalog views, replicas, plain DuckDB) read the
//! data files with `file_row_number` and leave out the deleted rows listed in a small Parquet
//! file, `_lakeflow/deleted-<hash>.parquet`, named after the vectors it lists.

use super::{DataFile, Snapshot, Table, block_on, delta_err, delta_error, file_path};
use crate::error::Result;
use crate::model::relation::quote_literal;
use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use duckdb::Connection;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use roaring::RoaringTreemap;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// The magic number of the portable Roaring serialization in a deletion vector.
const MAGIC: u32 = 1_681_511_377;

/// The table property that allows deletion vectors.
pub const PROPERTY: &str = "delta.enableDeletionVectors";

/// Whether the table properties allow deletion vectors.
pub fn enabled(properties: &BTreeMap<String, String>) -> bool {
    properties
        .get(PROPERTY)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The bytes of one vector at its offset in a file: size, magic, bitmap, checksum.
fn encode(rows: &RoaringTreemap) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(4 + rows.serialized_size());
    body.extend_from_slice(&MAGIC.to_le_bytes());
    rows.serialize_into(&mut body)
        .map_err(|e| delta_error(format!("cannot encode a deletion vector: {e}")))?;
    let size = u32::try_from(body.len())
        .map_err(|_| delta_error("a deletion vector is larger than 4 GiB"))?;
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    Ok(out)
}

/// The bitmap of the vector at the start of `bytes` (its size field), checked against the
/// descriptor's size, the magic number and the checksum.
fn decode(bytes: &[u8], size: usize, what: &str) -> Result<RoaringTreemap> {
    let bad = |why: &str| delta_error(format!("the deletion vector {what} is damaged: {why}"));
    if bytes.len() < size + 8 {
        return Err(bad("it is shorter than its descriptor says"));
    }
    let stored = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if stored != size {
        return Err(bad(&format!(
            "its size is {stored} bytes, the log says {size}"
        )));
    }
    let body = &bytes[4..4 + size];
    let crc = &bytes[4 + size..8 + size];
    if crc32fast::hash(body).to_be_bytes() != crc {
        return Err(bad("the checksum does not match"));
    }
    decode_body(body, &bad)
}

/// Magic number and bitmap (the form inline vectors take).
fn decode_body(body: &[u8], bad: &dyn Fn(&str) -> crate::error::Error) -> Result<RoaringTreemap> {
    if body.len() < 4 || u32::from_le_bytes([body[0], body[1], body[2], body[3]]) != MAGIC {
        return Err(bad(
            "it does not start with the portable Roaring magic number",
        ));
    }
    RoaringTreemap::deserialize_from(&body[4..]).map_err(|e| bad(&e.to_string()))
}

/// The file a `u` descriptor names, relative to the table: an optional prefix folder, then
/// `deletion_vector_<uuid>.bin` with the UUID from the last 20 (Z85) characters.
fn relative_path(d: &DeletionVectorDescriptor) -> Result<String> {
    let text = &d.path_or_inline_dv;
    let split = text
        .len()
        .checked_sub(20)
        .filter(|&i| text.is_char_boundary(i));
    let bad = || delta_error(format!("'{text}' is not a deletion vector file reference"));
    let i = split.ok_or_else(bad)?;
    let bytes = z85::decode(&text[i..]).map_err(|_| bad())?;
    let uuid = uuid::Uuid::from_slice(&bytes).map_err(|_| bad())?;
    let prefix = &text[..i];
    Ok(if prefix.is_empty() {
        format!("deletion_vector_{uuid}.bin")
    } else {
        format!("{prefix}/deletion_vector_{uuid}.bin")
    })
}

/// The deletion vector file of a descriptor (relative to the table), if it is one.
pub fn file_of(d: &DeletionVectorDescriptor) -> Option<String> {
    (d.storage_type == StorageType::UuidRelativePath)
        .then(|| relative_path(d).ok())
        .flatten()
}

/// The deletion vector files and the deleted-rows list a version reads.
pub fn files_of(snap: &Snapshot) -> Vec<String> {
    let vectors = snap
        .files
        .iter()
        .filter_map(|f| file_of(f.deletion_vector.as_ref()?));
    vectors.chain(list_name(snap)).collect()
}

/// The rows a descriptor deletes. Vectors in one file are read with one request per file
/// through `cache`.
fn read(
    table: &Table,
    d: &DeletionVectorDescriptor,
    cache: &mut HashMap<String, Vec<u8>>,
) -> Result<RoaringTreemap> {
    let size = usize::try_from(d.size_in_bytes)
        .map_err(|_| delta_error("a deletion vector has a negative size"))?;
    match d.storage_type {
        StorageType::Inline => {
            let raw = z85::decode(&d.path_or_inline_dv).map_err(|_| {
                delta_error("an inline deletion vector is not valid Z85".to_string())
            })?;
            let body = raw.get(..size).ok_or_else(|| {
                delta_error("an inline deletion vector is shorter than its size".to_string())
            })?;
            decode_body(body, &|why| {
                delta_error(format!("an inline deletion vector is damaged: {why}"))
            })
        }
        StorageType::UuidRelativePath => {
            let rel = relative_path(d)?;
            if !cache.contains_key(&rel) {
                let store = table.store().clone();
                let path = StorePath::parse(&rel).map_err(delta_err)?;
                let bytes = block_on(async move { store.get(&path).await?.bytes().await })?
                    .map(|b| b.to_vec())
                    .map_err(|e| {
                        delta_error(format!(
                            "cannot read the deletion vector {}/{rel}: {e}",
                            table.location
                        ))
                    })?;
                cache.insert(rel.clone(), bytes);
            }
            let bytes = &cache[&rel];
            let offset = usize::try_from(d.offset.unwrap_or(1))
                .map_err(|_| delta_error("a deletion vector has a negative offset"))?;
            let at = bytes.get(offset..).unwrap_or_default();
            decode(at, size, &format!("{}/{rel}@{offset}", table.location))
        }
        StorageType::AbsolutePath => Err(delta_error(format!(
            "the Delta table {} has a deletion vector at an absolute path ({}), which lakeflow cannot read; read the table with DuckDB's delta extension (external_location: \"delta_scan('{}')\")",
            table.location, d.path_or_inline_dv, table.location
        ))),
    }
}

/// The deleted rows of each of `files` that has a deletion vector, by file path.
pub fn deleted_rows<'a>(
    table: &Table,
    files: impl IntoIterator<Item = &'a DataFile>,
) -> Result<BTreeMap<String, RoaringTreemap>> {
    let mut cache = HashMap::new();
    let mut out = BTreeMap::new();
    for f in files {
        if let Some(d) = &f.deletion_vector {
            out.insert(f.path.clone(), read(table, d, &mut cache)?);
        }
    }
    Ok(out)
}

/// Writes the vectors of one commit into one new file at the table root and returns their
/// descriptors, in the order given.
pub fn write(table: &Table, vectors: &[&RoaringTreemap]) -> Result<Vec<DeletionVectorDescriptor>> {
    let uuid = uuid::Uuid::new_v4();
    let mut bytes = vec![1u8];
    let mut descriptors = Vec::with_capacity(vectors.len());
    for rows in vectors {
        let offset = i32::try_from(bytes.len())
            .map_err(|_| delta_error("the deletion vectors of one commit exceed 2 GiB"))?;
        let encoded = encode(rows)?;
        descriptors.push(DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: z85::encode(uuid.as_bytes()),
            offset: Some(offset),
            size_in_bytes: (encoded.len() - 8) as i32,
            cardinality: rows.len() as i64,
        });
        bytes.extend_from_slice(&encoded);
    }
    let store = table.store().clone();
    let path = StorePath::parse(format!("deletion_vector_{uuid}.bin")).map_err(delta_err)?;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    block_on(async move { store.put_opts(&path, bytes.into(), opts).await })?.map_err(|e| {
        delta_error(format!(
            "cannot write a deletion vector into {}: {e}",
            table.location
        ))
    })?;
    Ok(descriptors)
}

/// Whether a file name (relative to the table) is a deletion vector file or a deleted-rows list,
/// the files lakeflow may remove when no version it keeps needs them.
pub fn is_own_file(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    (file.starts_with("deletion_vector_") && file.ends_with(".bin"))
        || (name.starts_with("_lakeflow/deleted-")
            && (name.ends_with(".parquet") || name.contains(".parquet.tmp-")))
}

/// The deleted-rows list of a snapshot (relative to the table), named after its vectors; None
/// when no file of the snapshot has one.
pub fn list_name(snap: &Snapshot) -> Option<String> {
    let mut lines: Vec<String> = snap
        .files
        .iter()
        .filter_map(|f| {
            let d = f.deletion_vector.as_ref()?;
            Some(format!(
                "{}\t{}\t{}\t{:?}",
                f.path, d.storage_type, d.path_or_inline_dv, d.offset
            ))
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    lines.sort();
    let hash = Sha256::digest(lines.join("\n").as_bytes());
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("_lakeflow/deleted-{hex}.parquet"))
}

/// Whether the list of deleted rows `name` (relative to the table) is there.
fn list_exists(table: &Table, name: &str) -> Result<bool> {
    let path = StorePath::parse(name).map_err(delta_err)?;
    let store = table.store().clone();
    match block_on(async move { store.head(&path).await })? {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(delta_error(format!(
            "cannot read {}/{name}: {e}",
            table.location
        ))),
    }
}

/// The relation of deleted rows (`lf_file`, `file_row_number`) a reader of `snap` leaves out,
/// or None when nothing is deleted. It is the snapshot's deleted-rows list when that exists;
/// with a connection, the list is written first (DuckDB writes it, under a temporary name
/// renamed into place); without one (a table lakeflow does not write), the rows are inlined.
pub fn deleted_relation(
    table: &Table,
    conn: Option<&Connection>,
    snap: &Snapshot,
) -> Result<Option<String>> {
    let Some(name) = list_name(snap) else {
        return Ok(None);
    };
    let reader = format!(
        "read_parquet({})",
        quote_literal(&file_path(&table.location, &name))
    );
    if list_exists(table, &name)? {
        return Ok(Some(reader));
    }
    let rows = deleted_rows(table, &snap.files)?;
    let Some(conn) = conn else {
        let mut values = Vec::new();
        for (file, set) in &rows {
            let file = quote_literal(&file_path(&table.location, file));
            values.extend(set.iter().map(|r| format!("({file}, {r})")));
        }
        if values.is_empty() {
            return Ok(None);
        }
        return Ok(Some(format!(
            "(select * from (values {}) as lf_x(lf_file, file_row_number))",
            values.join(", ")
        )));
    };
    write_list(table, conn, &rows, &name)?;
    Ok(Some(reader))
}

fn write_list(
    table: &Table,
    conn: &Connection,
    rows: &BTreeMap<String, RoaringTreemap>,
    name: &str,
) -> Result<()> {
    let temp = format!("lf_deleted_{}", uuid::Uuid::new_v4().simple());
    conn.execute_batch(&format!(
        "create temp table {temp} (lf_file varchar, file_row_number bigint)"
    ))
    .map_err(delta_err)?;
    let _drop = super::DropTemp(conn, &temp);
    let filled = (|| -> Result<()> {
        let mut app = conn
            .appender_to_catalog_and_db(&temp, "temp", "main")
            .map_err(delta_err)?;
        for (file, set) in rows {
            let file = file_path(&table.location, file);
            for r in set.iter() {
                app.append_row(duckdb::params![file, r as i64])
                    .map_err(delta_err)?;
            }
        }
        app.flush().map_err(delta_err)
    })();
    filled?;
    copy_list(
        table,
        conn,
        &format!("select * from temp.main.{temp}"),
        name,
    )
}

/// Writes the list of deleted rows of `new` from the list of `old` and the rows of `marked` (a
/// relation of `lf_file`, `file_row_number`), without reading the vectors back. Does nothing
/// when `old` had vectors but its list is gone (the reader then writes one from the vectors).
pub fn extend_list(
    table: &Table,
    conn: &Connection,
    old: &Snapshot,
    new: &Snapshot,
    marked: &str,
) -> Result<()> {
    let Some(name) = list_name(new) else {
        return Ok(());
    };
    let mut parts = vec![format!("select lf_file, file_row_number from {marked}")];
    if let Some(previous) = list_name(old) {
        if !list_exists(table, &previous)? {
            return Ok(());
        }
        parts.push(format!(
            "select lf_file, file_row_number from read_parquet({})",
            quote_literal(&file_path(&table.location, &previous))
        ));
    }
    copy_list(
        table,
        conn,
        &format!("select distinct * from ({})", parts.join(" union all ")),
        &name,
    )
}

/// `COPY`s `select` to the list `name`, under a temporary name renamed into place.
fn copy_list(table: &Table, conn: &Connection, select: &str, name: &str) -> Result<()> {
    if !crate::project::paths::is_remote(&table.location) {
        std::fs::create_dir_all(format!("{}/_lakeflow", table.location))
            .map_err(|e| delta_error(format!("cannot create {}/_lakeflow: {e}", table.location)))?;
    }
    let part = format!("{name}.tmp-{}", uuid::Uuid::new_v4().simple());
    let copied = conn
        .execute_batch(&format!(
            "copy ({select} order by all) to {} (format parquet)",
            quote_literal(&file_path(&table.location, &part))
        ))
        .map_err(delta_err);
    let store = table.store().clone();
    let (from, to) = (
        StorePath::parse(&part).map_err(delta_err)?,
        StorePath::parse(name).map_err(delta_err)?,
    );
    if let Err(e) = copied {
        let _ = block_on(async move { store.delete(&from).await });
        return Err(e);
    }
    block_on(async move { store.rename(&from, &to).await })?.map_err(|e| {
        delta_error(format!(
            "cannot move the deleted-rows list into place at {}/{name}: {e}",
            table.location
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_damage_is_found() {
        let rows: RoaringTreemap = [3u64, 5, 7, 70_000, 5_000_000_000].into_iter().collect();
        let bytes = encode(&rows).unwrap();
        let size = bytes.len() - 8;
        assert_eq!(decode(&bytes, size, "t").unwrap(), rows);
        let mut broken = bytes.clone();
        broken[10] ^= 1;
        assert!(decode(&broken, size, "t").is_err());
        assert!(decode(&bytes, size + 1, "t").is_err());
        // The layout readers expect: size big endian, magic little endian.
        assert_eq!(&bytes[..4], &(size as u32).to_be_bytes());
        assert_eq!(&bytes[4..8], &[0xd1, 0xd3, 0x39, 0x64]);
    }

    #[test]
    fn file_references_name_the_uuid() {
        let uuid = uuid::Uuid::new_v4();
        let d = DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: format!("ab{}", z85::encode(uuid.as_bytes())),
            offset: Some(1),
            size_in_bytes: 1,
            cardinality: 1,
        };
        assert_eq!(
            relative_path(&d).unwrap(),
            format!("ab/deletion_vector_{uuid}.bin")
        );
        assert!(is_own_file(&relative_path(&d).unwrap()));
        assert!(is_own_file("_lakeflow/deleted-00ff.parquet"));
        assert!(is_own_file("_lakeflow/deleted-00ff.parquet.tmp-1a"));
        assert!(!is_own_file("_lakeflow/notes.txt"));
        assert!(!is_own_file("part-1.parquet"));
    }
}

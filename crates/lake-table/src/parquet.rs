//! The lake's Parquet data files: Snappy, as the contract asks; min, max
//! and null counts per row group, so readers can skip row groups.
//!
//! Row groups are encoded here rather than by Polars' writer, with the same
//! encoders, options and footer (the same bytes), for two reasons:
//! - a text column goes through [`view_dictionary`] first. Polars hashes
//!   every string of a text column twice to build its dictionary (a
//!   cardinality estimate, then the dictionary itself); the lake's text
//!   columns mostly come from joins with small tables, whose strings share
//!   views, so hashing the fixed-size views and then the few distinct
//!   strings gives the same dictionary for a fraction of the work;
//! - pages are compressed in the column-parallel part, where Polars'
//!   writer compresses them on one thread as it writes them.

use std::io::Write;

use polars::io::parquet::write::get_encodings;
use polars::prelude::*;
use polars_arrow::array::{ArrayRef, Utf8ViewArray};
use polars_arrow::datatypes::ArrowDataType;
use polars_arrow::record_batch::RecordBatch;
use polars_core::runtime::RAYON;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, DynIter, DynStreamingIterator, Encoding, FileWriter,
    ParquetType, StatisticsOptions, Version, WriteOptions, array_to_columns, compress,
    fallible_streaming_iterator,
};
use rayon::prelude::*;

use crate::view_dictionary::view_dictionary;

/// Rows per row group: large enough for good compression, small enough that
/// a reader projecting a few columns does not pull much more than it needs.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// How every page is written: Polars' defaults (format version 1 pages of
/// at most 1 MiB, min, max and null count statistics) with Snappy.
fn write_options() -> WriteOptions {
    WriteOptions {
        statistics: StatisticsOptions::default(),
        compression: CompressionOptions::Snappy,
        version: Version::V1,
        data_page_size: None,
    }
}

/// A Parquet file being written row group by row group.
pub struct ParquetFile<W: Write> {
    writer: FileWriter<W>,
    fields: Vec<ParquetType>,
    encodings: Vec<Vec<Encoding>>,
    options: WriteOptions,
}

impl<W: Write> ParquetFile<W> {
    /// Starts a file of `schema` on `sink` (nothing is written before the
    /// first row group).
    pub fn new(sink: W, schema: &Schema) -> PolarsResult<ParquetFile<W>> {
        let arrow_schema = schema.to_arrow(CompatLevel::newest());
        let encodings = get_encodings(&arrow_schema).iter().cloned().collect();
        let options = write_options();
        let writer = FileWriter::try_new(sink, arrow_schema, options)?;
        let fields = writer.parquet_schema().fields().to_vec();
        Ok(ParquetFile {
            writer,
            fields,
            encodings,
            options,
        })
    }

    /// Writes `df` as row groups of at most [`ROW_GROUP_ROWS`] rows (its
    /// columns rechunked alike first when they are not).
    pub fn write(&mut self, df: &mut DataFrame) -> PolarsResult<()> {
        let row_groups = polars::frame::chunk_df_for_writing(df, ROW_GROUP_ROWS)?;
        for batch in row_groups.iter_chunks(CompatLevel::newest(), false) {
            let rows = batch.len();
            if rows == 0 {
                continue;
            }
            let columns = self.encode(batch)?;
            let row_group = DynIter::new(columns.iter().map(|pages| {
                let pages = fallible_streaming_iterator::convert(pages.iter().map(Ok));
                Ok(DynStreamingIterator::new(pages))
            }));
            self.writer.write(rows as u64, row_group)?;
        }
        Ok(())
    }

    /// Writes the footer (with the Arrow schema); the file size.
    pub fn finish(&mut self) -> PolarsResult<u64> {
        self.writer.end(None)
    }

    /// The compressed pages of each leaf column of a row group. The columns
    /// are encoded and compressed in parallel, completely: Polars' writer
    /// compresses the pages as it writes them, on one thread (Snappy alone
    /// was 6 % of silver's CPU).
    fn encode(&self, batch: RecordBatch) -> PolarsResult<Vec<Vec<CompressedPage>>> {
        let (fields, encodings, options) = (&self.fields, &self.encodings, self.options);
        let columns = RAYON.install(|| {
            batch
                .columns()
                .par_iter()
                .zip(fields)
                .zip(encodings)
                .map(|((array, field), encoding)| column_pages(array, field, encoding, options))
                .collect::<PolarsResult<Vec<_>>>()
        })?;
        Ok(columns.into_iter().flatten().collect())
    }
}

/// The compressed pages of one column of a row group, per Parquet leaf
/// column.
fn column_pages(
    array: &ArrayRef,
    field: &ParquetType,
    encoding: &[Encoding],
    options: WriteOptions,
) -> PolarsResult<Vec<Vec<CompressedPage>>> {
    let dictionary = match array.dtype() {
        ArrowDataType::Utf8View => array
            .as_any()
            .downcast_ref::<Utf8ViewArray>()
            .and_then(view_dictionary),
        _ => None,
    };
    let encoded = match dictionary {
        Some(dictionary) => array_to_columns(
            dictionary.boxed(),
            field.clone(),
            options,
            &[Encoding::RleDictionary],
        )?,
        None => array_to_columns(array, field.clone(), options, encoding)?,
    };
    encoded
        .into_iter()
        .map(|pages| {
            pages
                .map(|page| -> PolarsResult<CompressedPage> {
                    Ok(compress(page?, Vec::new(), options.compression)?)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A frame in two chunks with: a text column gathered from 7 long
    /// strings (as a join gives: rows share their views), the same strings
    /// stored apart on every row (as read from a source: one view each), a
    /// short-text column with nulls, distinct strings and a number.
    fn frame() -> DataFrame {
        let companies = Series::new(
            "company".into(),
            (0..7)
                .map(|i| format!("customer company number {i}"))
                .collect::<Vec<_>>(),
        );
        let chunk = |from: usize| {
            let rows = from..from + 3000;
            let picks: Vec<IdxSize> = rows.clone().map(|i| (i % 7) as IdxSize).collect();
            let company = companies.take_slice(&picks).unwrap();
            df!(
                "company" => company,
                "company_copy" => rows.clone().map(|i| format!("customer company number {}", i % 7)).collect::<Vec<_>>(),
                "city" => rows.clone().map(|i| (i % 5 != 0).then(|| ["Berlin", "Lyon"][i % 2])).collect::<Vec<_>>(),
                "id" => rows.clone().map(|i| format!("order {i}")).collect::<Vec<_>>(),
                "amount" => rows.map(|i| i as f64 / 4.0).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let mut df = chunk(0);
        df.vstack_mut(&chunk(3000)).unwrap();
        df
    }

    #[test]
    fn files_are_those_polars_writes_and_read_back_equal() {
        let df = frame();
        assert_eq!(df.first_col_n_chunks(), 2);
        // The view dictionary encodes the gathered company column (7 views)
        // and the short cities; the copies (6000 views) and the ids go to
        // Polars' encoder, which makes a dictionary of the copies too.
        let values = |name: &str| {
            let column = df.column(name).unwrap().str().unwrap();
            let array = column.downcast_iter().next().unwrap();
            view_dictionary(array).map(|dictionary| dictionary.values().len())
        };
        let encoded = ["company", "city", "company_copy", "id"].map(values);
        assert_eq!(encoded, [Some(7), Some(2), None, None]);
        let mut ours = Vec::new();
        let mut file = ParquetFile::new(&mut ours, &df.schema().clone()).unwrap();
        file.write(&mut df.clone()).unwrap();
        file.finish().unwrap();

        // Polars' own writer, with the same settings, gives the same bytes:
        // the same dictionaries, pages, statistics and footer (its row
        // groups hold 512 * 512 = ROW_GROUP_ROWS rows by default).
        let mut polars = Vec::new();
        let mut copy = df.clone();
        ParquetWriter::new(&mut polars)
            .with_compression(ParquetCompression::Snappy)
            .finish(&mut copy)
            .unwrap();
        assert!(
            ours == polars,
            "{} bytes vs Polars' {}",
            ours.len(),
            polars.len()
        );

        let read = ParquetReader::new(Cursor::new(ours)).finish().unwrap();
        assert!(read.equals_missing(&df));
        let company = read.column("company").unwrap().str().unwrap();
        assert_eq!(company.get(5999), Some("customer company number 0")); // 5999 % 7 = 0
    }
}

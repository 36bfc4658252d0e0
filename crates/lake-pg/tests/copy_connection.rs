//! COPY reads through a `CopyConnection`, against a real PostgreSQL: the
//! same bytes as the blocking client's, whatever the size of the reads,
//! and each read filled unless the copy ends (many row messages per read).

use std::io::Read;

use lake_pg::url::PgUrl;
use lake_testkit::pg_server;

#[test]
fn copy_reads_fill_each_buffer_across_row_messages() {
    let db = pg_server().create_db("lake_copy");
    let url: PgUrl = db.url.parse().unwrap();
    let mut client = url.connect().unwrap();
    client
        .batch_execute(
            "CREATE TABLE t AS SELECT g AS id, repeat('x', g % 50) AS txt \
             FROM generate_series(1, 5000) g",
        )
        .unwrap();
    let copy = "COPY t TO STDOUT (FORMAT binary)";
    let mut expected = Vec::new();
    client
        .copy_out(copy)
        .unwrap()
        .read_to_end(&mut expected)
        .unwrap();
    // 5000 rows of 2 fields: at least 5000 * (2 + 4 + 4 + 4) bytes.
    assert!(expected.len() > 70_000, "{} bytes", expected.len());

    let connection = url.connect_for_copy().unwrap();
    for size in [1usize, 7, 4096, 1 << 20] {
        let mut reader = connection.copy_out(copy).unwrap();
        let mut buffer = vec![0u8; size];
        let (mut read, mut reads) = (Vec::new(), 0);
        loop {
            let n = reader.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            reads += 1;
            read.extend_from_slice(&buffer[..n]);
        }
        assert!(read == expected, "reads of {size} bytes gave other bytes");
        assert_eq!(
            reads,
            expected.len().div_ceil(size),
            "reads of {size} bytes"
        );
    }
}

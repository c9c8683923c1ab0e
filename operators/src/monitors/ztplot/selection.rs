//! The top-10 rule and the `event_selection` table (spec `monitors.md`
//! §3.6, steps 3 and 6).
//!
//! The columns and their order are the original's, so existing databases
//! and the web's top-10 page keep working. Additions, all compatible with
//! an old file: WAL mode (the web server reads while we write), and a
//! unique index on (det_id, run_id, frame_index, trigger_counter) so a
//! replay into an existing database cannot duplicate rows. A legacy file
//! that already holds duplicates cannot take the unique index; it gets a
//! plain one and the insert's `NOT EXISTS` guard still keeps new
//! duplicates out.

use std::path::Path;

use rusqlite::{params, Connection};

/// What the top-10 rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    pub overlays: i64,
    pub n_hits: i64,
    pub n_triggered_hits: i64,
}

/// Lower limits: the 10th best value of each column, 0 while the table
/// has fewer than 10 rows. An event beating any one (strictly) is a
/// candidate, so a tie with the 10th best does not enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits(pub Sizes);

impl Limits {
    pub fn is_candidate(&self, s: &Sizes) -> bool {
        s.overlays > self.0.overlays
            || s.n_hits > self.0.n_hits
            || s.n_triggered_hits > self.0.n_triggered_hits
    }

    /// Limits of an in-memory list of rows (tests and benchmarks; the
    /// operator asks the database).
    pub fn of(rows: &[Sizes]) -> Limits {
        let tenth = |f: fn(&Sizes) -> i64| {
            let mut v: Vec<i64> = rows.iter().map(f).collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            v.get(9).copied().unwrap_or(0)
        };
        Limits(Sizes {
            overlays: tenth(|s| s.overlays),
            n_hits: tenth(|s| s.n_hits),
            n_triggered_hits: tenth(|s| s.n_triggered_hits),
        })
    }
}

/// One `event_selection` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub sizes: Sizes,
    pub n_dus: i64,
    pub plot_filename: String,
    pub run_id: i64,
    pub det_id: i64,
    pub frame_index: i64,
    pub trigger_counter: i64,
    pub utc_timestamp: i64,
}

/// (det_id, run_id, frame_index, trigger_counter, plot_filename).
pub type RowKey = (i64, i64, i64, i64, String);

pub struct SelectionDb {
    conn: Connection,
    table: String,
}

/// Table names go into SQL text, so only plain identifiers are allowed.
pub fn valid_table(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SelectionDb {
    pub fn open(path: &Path, table: &str) -> anyhow::Result<SelectionDb> {
        anyhow::ensure!(valid_table(table), "bad table name {table:?}");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // journal_mode returns a row, hence query_row.
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (overlays INT, n_hits INT, \
             n_triggered_hits INT, n_dus INT, plot_filename TEXT, run_id INT, det_id INT, \
             frame_index INT, trigger_counter INT, utc_timestamp INT)"
        ))?;
        let unique = format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS \"{table}_event\" ON \"{table}\" \
             (det_id, run_id, frame_index, trigger_counter)"
        );
        if let Err(e) = conn.execute_batch(&unique) {
            tracing::warn!("{table}: no unique index ({e}); duplicates kept out by the insert");
            conn.execute_batch(&format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_event_plain\" ON \"{table}\" \
                 (det_id, run_id, frame_index, trigger_counter)"
            ))?;
        }
        Ok(SelectionDb {
            conn,
            table: table.to_string(),
        })
    }

    /// The current limits from the table (values stored as text by the
    /// original are cast).
    pub fn limits(&self) -> rusqlite::Result<Limits> {
        let tenth = |col: &str| -> rusqlite::Result<i64> {
            let sql = format!(
                "SELECT CAST({col} AS INTEGER) AS v FROM \"{}\" ORDER BY v DESC LIMIT 1 OFFSET 9",
                self.table
            );
            match self
                .conn
                .query_row(&sql, [], |r| r.get::<_, Option<i64>>(0))
            {
                Ok(v) => Ok(v.unwrap_or(0)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(0),
                Err(e) => Err(e),
            }
        };
        Ok(Limits(Sizes {
            overlays: tenth("overlays")?,
            n_hits: tenth("n_hits")?,
            n_triggered_hits: tenth("n_triggered_hits")?,
        }))
    }

    /// Inserts `row` in its own transaction; false when the event is
    /// already there (a replay).
    pub fn insert(&mut self, row: &Row) -> rusqlite::Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            &format!(
                "INSERT OR IGNORE INTO \"{t}\" SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 \
                 WHERE NOT EXISTS (SELECT 1 FROM \"{t}\" WHERE det_id = ?7 AND run_id = ?6 \
                 AND frame_index = ?8 AND trigger_counter = ?9)",
                t = self.table
            ),
            params![
                row.sizes.overlays,
                row.sizes.n_hits,
                row.sizes.n_triggered_hits,
                row.n_dus,
                row.plot_filename,
                row.run_id,
                row.det_id,
                row.frame_index,
                row.trigger_counter,
                row.utc_timestamp
            ],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    pub fn count(&self) -> rusqlite::Result<i64> {
        self.conn.query_row(
            &format!("SELECT count(*) FROM \"{}\"", self.table),
            [],
            |r| r.get(0),
        )
    }

    /// (det_id, run_id, frame_index, trigger_counter, plot_filename) of
    /// every row, in insertion order; for tests and tools.
    pub fn keys(&self) -> rusqlite::Result<Vec<RowKey>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT det_id, run_id, frame_index, trigger_counter, plot_filename FROM \"{}\" ORDER BY rowid",
            self.table
        ))?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect()
    }
}

//! The central PostgreSQL schema the uplink writes (README "Central PostgreSQL (uplink)"): its
//! SQL text, its version and compatibility rule, and the monthly partitions of `cdrbox_cdr`.
//! Pure code: it builds SQL, the adapter in [`super::server`] runs it; `cdrbox uplink-schema`
//! prints it for a DBA.
//!
//! Compatibility rule (an old box writing to a newer schema keeps working):
//! - A schema version only ever ADDS: tables, views, indexes, and columns that are nullable or
//!   have a default. It never drops, renames or retypes a column, and never adds a constraint
//!   that rows written by the columns of an older version could break.
//! - Every box writes with explicit column lists and `ON CONFLICT … DO NOTHING`/`DO UPDATE` on
//!   the keys of version 1, so columns it does not know get their defaults.
//! - `cdrbox_schema.min_writer` is the oldest schema version whose boxes may still write. A box
//!   whose own version is below it stops forwarding with the status "central schema too new"
//!   (and keeps every record); one at or above it writes normally. A box newer than the
//!   server's schema migrates it forward (under an advisory lock, each step in a transaction).
//!
//! Partitioning: `cdrbox_cdr` is range-partitioned by month on the call's start time. The key
//! of the table is exactly (`box_id`, `pbx`, `identity`), and PostgreSQL wants the partition
//! column inside every unique key, so the partition column is `identity` itself: its first 4
//! bytes are the PBX's StartTime wall clock in seconds since 2000-01-01 (big-endian, see
//! `record::compute_identity`), so a month of start times is one contiguous range of
//! identities. Months are PBX-local (the office's month, whatever the server's zone). Records
//! whose StartTime did not parse (time key 0), and any month whose partition does not exist
//! yet, land in `cdrbox_cdr_default`: nothing is ever refused.
//!
//! Versions: 1 — the tables and views; 2 — `cdrbox_gaps` gets the ledger's lost count and
//! fill (the boxes forward their gap ledger from version 2 on).

/// The schema version this cdrbox writes (and creates).
pub const SCHEMA_VERSION: i32 = 2;

/// The oldest schema version whose boxes may write to a database of [`SCHEMA_VERSION`].
pub const MIN_WRITER: i32 = 1;

/// Key for the advisory lock that serialises schema changes and partition creation across
/// boxes (`pg_advisory_xact_lock`): "cdrbox" in ASCII.
pub const ADVISORY_LOCK: i64 = 0x6364_7262_6f78;

/// Migration `i` brings a database from schema version i to i + 1 (0 = nothing there yet).
/// Each runs in one transaction together with the version update.
pub const MIGRATIONS: &[&str] = &[MIGRATION_1, MIGRATION_2];

const MIGRATION_1: &str = r#"
CREATE TABLE IF NOT EXISTS cdrbox_schema (
    component   text PRIMARY KEY,
    version     integer NOT NULL,
    min_writer  integer NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cdrbox_schema IS 'cdrbox central schema version; min_writer = oldest box schema that may still write';

-- One row per call detail record of every box. The JSON export form is in "record"; the
-- typed columns are the same fields for SQL and dashboards.
CREATE TABLE IF NOT EXISTS cdrbox_cdr (
    box_id              text NOT NULL,
    pbx                 text NOT NULL,
    identity            bytea NOT NULL,
    seq                 bigint NOT NULL,
    unique_id           text NOT NULL,
    linked_id           text,
    sequence            bigint,
    account_code        text NOT NULL,
    source              text NOT NULL,
    destination         text NOT NULL,
    destination_context text NOT NULL,
    caller_id           text NOT NULL,
    channel             text NOT NULL,
    destination_channel text NOT NULL,
    last_application    text NOT NULL,
    last_data           text NOT NULL,
    start_time          timestamptz,
    answer_time         timestamptz,
    end_time            timestamptz,
    start_raw           text NOT NULL,
    answer_raw          text,
    end_raw             text NOT NULL,
    duration            bigint NOT NULL,
    billable_seconds    bigint NOT NULL,
    ring_seconds        bigint NOT NULL,
    disposition         text NOT NULL,
    ama_flags           text NOT NULL,
    user_field          text NOT NULL,
    direction           text NOT NULL,
    queue               text,
    agent               text,
    custom_fields       jsonb NOT NULL,
    record              jsonb NOT NULL,
    raw                 bytea NOT NULL,
    origin              text NOT NULL DEFAULT 'ami',
    received_at         timestamptz NOT NULL,
    stored_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (box_id, pbx, identity)
) PARTITION BY RANGE (identity);
COMMENT ON TABLE cdrbox_cdr IS 'cdrbox: every call detail record of every box, once (key box_id, pbx, identity)';
COMMENT ON COLUMN cdrbox_cdr.identity IS '16 bytes: StartTime wall clock (4 bytes, s since 2000-01-01 PBX local) + 12 bytes of SHA-256; the partition key';
COMMENT ON COLUMN cdrbox_cdr.seq IS 'the box journal''s arrival sequence (per box_id, never reused)';
COMMENT ON COLUMN cdrbox_cdr.record IS 'the record''s JSON export form (GET /export.json), as the box exported it';
COMMENT ON COLUMN cdrbox_cdr.raw IS 'the AMI event bytes exactly as received (empty for imported rows without them)';
COMMENT ON COLUMN cdrbox_cdr.origin IS 'ami | master-csv | cdr-db';
COMMENT ON COLUMN cdrbox_cdr.received_at IS 'when the box received the record (box clock)';
COMMENT ON COLUMN cdrbox_cdr.stored_at IS 'when this server stored it';
CREATE TABLE IF NOT EXISTS cdrbox_cdr_default PARTITION OF cdrbox_cdr DEFAULT;
CREATE INDEX IF NOT EXISTS cdrbox_cdr_start_time ON cdrbox_cdr (start_time);
CREATE INDEX IF NOT EXISTS cdrbox_cdr_box_start ON cdrbox_cdr (box_id, start_time);

-- Each box's gap ledger: intervals during which a PBX link was down (calls may be missing).
CREATE TABLE IF NOT EXISTS cdrbox_gaps (
    box_id          text NOT NULL,
    pbx             text NOT NULL,
    down_at         timestamptz NOT NULL,
    up_at           timestamptz,
    reason          text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (box_id, pbx, down_at)
);
COMMENT ON TABLE cdrbox_gaps IS 'cdrbox: each box''s gap ledger (up_at NULL while the link is still down)';

-- One row per box: who writes here, with which version, and when it was last heard from.
CREATE TABLE IF NOT EXISTS cdrbox_boxes (
    box_id          text PRIMARY KEY,
    version         text NOT NULL,
    schema_version  integer NOT NULL,
    first_contact   timestamptz NOT NULL DEFAULT now(),
    last_contact    timestamptz NOT NULL,
    last_seq        bigint NOT NULL DEFAULT 0,
    records         bigint NOT NULL DEFAULT 0
);
COMMENT ON COLUMN cdrbox_boxes.last_seq IS 'highest journal seq of this box the server has committed';
COMMENT ON COLUMN cdrbox_boxes.records IS 'rows this box added to cdrbox_cdr (re-sent duplicates not counted)';

-- Example view: calls per office (box, PBX) per PBX-local day.
CREATE OR REPLACE VIEW cdrbox_calls_per_office_day AS
SELECT box_id,
       pbx,
       substr(start_raw, 1, 10)::date                          AS day,
       count(*)                                                AS calls,
       count(*) FILTER (WHERE disposition = 'ANSWERED')        AS answered,
       count(*) FILTER (WHERE disposition <> 'ANSWERED')       AS not_answered,
       count(*) FILTER (WHERE direction = 'inbound')           AS inbound,
       count(*) FILTER (WHERE direction = 'outbound')          AS outbound,
       sum(billable_seconds)                                   AS talk_seconds,
       round(avg(ring_seconds) FILTER (WHERE disposition = 'ANSWERED'), 1) AS avg_ring_seconds
FROM cdrbox_cdr
WHERE start_raw ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}'
GROUP BY box_id, pbx, substr(start_raw, 1, 10)::date;

-- Example view: each box's health as the server sees it.
CREATE OR REPLACE VIEW cdrbox_box_health AS
SELECT b.box_id,
       b.version,
       b.last_contact,
       now() - b.last_contact                                  AS silent_for,
       b.records,
       (SELECT count(*) FROM cdrbox_gaps g WHERE g.box_id = b.box_id AND g.up_at IS NULL) AS open_gaps
FROM cdrbox_boxes b;
"#;

/// Version 2 (only adds, like every version): what `cdrbox_gaps` needs to hold a box's gap
/// ledger entry whole — the records known lost, and where an import filled the interval from.
const MIGRATION_2: &str = r#"
ALTER TABLE cdrbox_gaps ADD COLUMN IF NOT EXISTS lost bigint NOT NULL DEFAULT 0;
ALTER TABLE cdrbox_gaps ADD COLUMN IF NOT EXISTS filled_from text;
ALTER TABLE cdrbox_gaps ADD COLUMN IF NOT EXISTS filled_records bigint NOT NULL DEFAULT 0;
ALTER TABLE cdrbox_gaps ADD COLUMN IF NOT EXISTS filled_at timestamptz;
ALTER TABLE cdrbox_gaps ADD COLUMN IF NOT EXISTS box_gap_id bigint;
COMMENT ON COLUMN cdrbox_gaps.down_at IS 'start of the interval (box clock); with box_id and pbx the key';
COMMENT ON COLUMN cdrbox_gaps.lost IS 'records the box knows it dropped in the interval (memory bound); 0 for a link that was down';
COMMENT ON COLUMN cdrbox_gaps.filled_from IS 'master-csv | cdr-db when an import covered the interval; NULL while open';
COMMENT ON COLUMN cdrbox_gaps.filled_records IS 'records that import added inside the interval';
COMMENT ON COLUMN cdrbox_gaps.box_gap_id IS 'the row id in the box''s own ledger (for support; restarts with a new journal file)';
"#;

/// The SQL that records a schema version (run in the same transaction as its migration).
pub fn set_version_sql() -> &'static str {
    "INSERT INTO cdrbox_schema (component, version, min_writer) VALUES ('cdrbox', $1, $2)
     ON CONFLICT (component) DO UPDATE
       SET version = GREATEST(cdrbox_schema.version, excluded.version),
           min_writer = GREATEST(cdrbox_schema.min_writer, excluded.min_writer),
           updated_at = now()"
}

/// The whole schema as one script for `cdrbox uplink-schema` (for `psql -1 -f`): every
/// migration, then the version row, then the partitions of the months around `now_utc`.
pub fn script(now_utc: i64) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "-- cdrbox central schema, version {SCHEMA_VERSION} (cdrbox {}).\n\
         -- Run as the owner of the tables, e.g.: psql -v ON_ERROR_STOP=1 -1 -f cdrbox.sql \"$DATABASE_URL\"\n\
         -- The boxes also create all of this themselves when their user may (README: central side).\n",
        env!("CARGO_PKG_VERSION")
    ));
    for (i, m) in MIGRATIONS.iter().enumerate() {
        out.push_str(&format!("\n-- version {} --\n", i + 1));
        out.push_str(m.trim_start_matches('\n'));
    }
    out.push_str(&format!(
        "\nINSERT INTO cdrbox_schema (component, version, min_writer) VALUES ('cdrbox', {SCHEMA_VERSION}, {MIN_WRITER})\n\
         ON CONFLICT (component) DO UPDATE SET version = GREATEST(cdrbox_schema.version, excluded.version),\n\
         \x20   min_writer = GREATEST(cdrbox_schema.min_writer, excluded.min_writer), updated_at = now();\n"
    ));
    out.push_str(
        "\n-- Monthly partitions around today (the boxes add the others as records need them).\n",
    );
    let now = Month::of_unix(now_utc);
    let mut m = now.plus(-1);
    while m <= now.plus(2) {
        out.push_str(&m.create_sql());
        out.push_str(";\n");
        m = m.plus(1);
    }
    out
}

/// A calendar month of PBX wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i16,
    /// 1–12.
    pub month: i8,
}

/// Where the identity's time key counts from (`record::compute_identity`).
const KEY_EPOCH: jiff::civil::DateTime = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);

impl Month {
    /// The month of an identity's time prefix; `None` for key 0 (the StartTime did not parse:
    /// such records go to the default partition).
    pub fn of_identity(identity: &[u8; 16]) -> Option<Month> {
        let key = u32::from_be_bytes([identity[0], identity[1], identity[2], identity[3]]);
        if key == 0 {
            return None;
        }
        let dt = KEY_EPOCH
            .checked_add(jiff::SignedDuration::from_secs(i64::from(key)))
            .ok()?;
        Some(Month {
            year: dt.year(),
            month: dt.month(),
        })
    }

    /// The UTC month of a Unix time (for "the months around today").
    pub fn of_unix(unix: i64) -> Month {
        let dt = jiff::Timestamp::from_second(unix)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .datetime();
        Month {
            year: dt.year(),
            month: dt.month(),
        }
    }

    /// `n` months later (earlier for negative `n`).
    pub fn plus(self, n: i32) -> Month {
        let idx = i32::from(self.year) * 12 + i32::from(self.month) - 1 + n;
        Month {
            year: idx.div_euclid(12) as i16,
            month: (idx.rem_euclid(12) + 1) as i8,
        }
    }

    /// The identity time key of this month's first second (0 before 2000, saturating after
    /// 2136 like the key itself).
    fn key(self) -> u32 {
        let start = jiff::civil::date(self.year, self.month, 1).at(0, 0, 0, 0);
        let secs = start.duration_since(KEY_EPOCH).as_secs();
        u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
    }

    /// The partition's table name, `cdrbox_cdr_y2026m11`.
    pub fn table(self) -> String {
        format!("cdrbox_cdr_y{:04}m{:02}", self.year, self.month)
    }

    /// `FROM (…) TO (…)`: identities whose time prefix falls in this month.
    pub fn bounds(self) -> (String, String) {
        let lit = |key: u32| format!("'\\x{:08x}000000000000000000000000'", key);
        (lit(self.key()), lit(self.plus(1).key()))
    }

    /// `CREATE TABLE IF NOT EXISTS … PARTITION OF cdrbox_cdr FOR VALUES FROM … TO …`.
    pub fn create_sql(self) -> String {
        let (from, to) = self.bounds();
        format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF cdrbox_cdr FOR VALUES FROM ({from}) TO ({to})",
            self.table()
        )
    }

    /// Whether partitions can be made for this month at all: the identity key covers
    /// 2000-01 … 2136-01 (later months share the saturated key and stay in the default).
    pub fn partitionable(self) -> bool {
        self.year >= 2000 && self.plus(1).key() < u32::MAX && self.key() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(start: &str) -> [u8; 16] {
        crate::record::compute_identity(
            "office",
            &[(b"StartTime", start.as_bytes()), (b"UniqueID", b"1.1")],
        )
    }

    #[test]
    fn identity_month_is_the_wall_clock_month() {
        assert_eq!(
            Month::of_identity(&identity("2026-11-30 23:59:59")),
            Some(Month {
                year: 2026,
                month: 11
            })
        );
        assert_eq!(
            Month::of_identity(&identity("2026-12-01 00:00:00")),
            Some(Month {
                year: 2026,
                month: 12
            })
        );
        assert_eq!(Month::of_identity(&identity("not a time")), None);
    }

    #[test]
    fn a_months_bounds_hold_exactly_its_identities() {
        let nov = Month {
            year: 2026,
            month: 11,
        };
        let (from, to) = nov.bounds();
        let hex_of = |s: &str| crate::hex::encode(&identity(s));
        let inside = |s: &str| {
            let h = format!("'\\x{}'", hex_of(s));
            h >= from && h < to
        };
        assert!(inside("2026-11-01 00:00:00"));
        assert!(inside("2026-11-30 23:59:59"));
        assert!(!inside("2026-10-31 23:59:59"));
        assert!(!inside("2026-12-01 00:00:00"));
        assert_eq!(nov.table(), "cdrbox_cdr_y2026m11");
    }

    #[test]
    fn months_roll_over_years() {
        let jan = Month {
            year: 2027,
            month: 1,
        };
        assert_eq!(
            jan.plus(-1),
            Month {
                year: 2026,
                month: 12
            }
        );
        assert_eq!(
            jan.plus(13),
            Month {
                year: 2028,
                month: 2
            }
        );
        assert!(jan.partitionable());
        assert!(!Month {
            year: 1999,
            month: 12
        }
        .partitionable());
        assert!(!Month {
            year: 2136,
            month: 2
        }
        .partitionable());
    }

    #[test]
    fn script_has_every_table_the_contract_names() {
        let s = script(1_795_331_257);
        for t in [
            "CREATE TABLE IF NOT EXISTS cdrbox_cdr (",
            "PRIMARY KEY (box_id, pbx, identity)",
            "cdrbox_cdr_default PARTITION OF cdrbox_cdr DEFAULT",
            "CREATE TABLE IF NOT EXISTS cdrbox_gaps",
            "CREATE TABLE IF NOT EXISTS cdrbox_boxes",
            "CREATE TABLE IF NOT EXISTS cdrbox_schema",
            "cdrbox_calls_per_office_day",
            "cdrbox_cdr_y2026m11 PARTITION OF",
        ] {
            assert!(s.contains(t), "missing {t:?}");
        }
    }
}

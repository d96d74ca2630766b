//! The calls count of [`JournalReader`]: from the calls summary (`store::calls`) for the whole
//! summarised days of a range, the edges from the table, and the plain `count(DISTINCT key)`
//! scan the property tests compare it with. A child of `query` so it reads the reader's
//! connection directly.

use std::collections::HashSet;

use rusqlite::params_from_iter;
use rusqlite::types::{Value, ValueRef};

use super::{by_day_summary, sql, where_clause, JournalReader};
use crate::filter::Filter;
use crate::journal::store::{self, CALL_KEY_FN};
use crate::journal::JournalError;

impl JournalReader {
    /// How many calls the matching records belong to (`crate::calls::call_key`): a call
    /// counts once however many of its CDRs match. From the calls summary (`store::calls`) for
    /// the whole summarised days of the range when the filter is one it can answer, the edges
    /// (partial days, days not summarised yet or changed since) from the table.
    pub fn count_calls(&self, f: &Filter) -> Result<u64, JournalError> {
        let mask = store::group_mask(&f.directions, &f.dispositions);
        let (true, Some(mask)) = (self.source == "main.cdr" && by_day_summary(f), mask) else {
            return self.count_calls_scan(f);
        };
        let read = |what: &'static str| sql(&self.db, what);
        let upto = store::call_summary_upto(&self.conn).map_err(read("cannot read meta"))?;
        let dirty =
            store::dirty_call_days(&self.conn).map_err(read("cannot read the calls summary"))?;
        let split = store::split_days(f.from_utc, f.to_utc, upto);
        let Some((lo, hi)) = split.days else {
            return self.count_calls_scan(f);
        };
        // The whole days, in day numbers, without the dirty ones; those join the edges.
        let (segments, mut edges) = cut_out(lo / store::DAY, hi / store::DAY, &dirty);
        if segments.is_empty() {
            return self.count_calls_scan(f);
        }
        edges.extend(split.edges);
        let mut days_sql = Vec::new();
        let mut values = Vec::new();
        for (a, b) in &segments {
            days_sql.push("(day >= ? AND day < ?)");
            values.extend([Value::Integer(*a), Value::Integer(*b)]);
        }
        let mut days_sql = format!("({})", days_sql.join(" OR "));
        let day_values = values.clone();
        if !f.pbx.is_empty() {
            days_sql.push_str(&format!(
                " AND pbx IN ({})",
                vec!["?"; f.pbx.len()].join(", ")
            ));
            values.extend(f.pbx.iter().map(|p| Value::Text(p.clone())));
        }
        values.push(Value::Integer(mask));
        let one = |q: &str| -> Result<i64, JournalError> {
            self.conn
                .prepare_cached(q)
                .and_then(|mut s| s.query_row(params_from_iter(values.iter()), |r| r.get(0)))
                .map_err(read("cannot read the calls summary"))
        };
        // Calls per matching day, less the extra days of the calls seen on several of them.
        let per_day = one(&format!(
            "SELECT coalesce(sum(calls), 0) FROM main.cdr_call_day \
             WHERE {days_sql} AND (mask & ?) != 0"
        ))?;
        let repeats = one(&format!(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM main.cdr_call \
             WHERE multi AND {days_sql} AND (mask & ?) != 0 GROUP BY key)"
        ))?;
        // The edges' calls, and which of them the days counted already.
        let mut keys: HashSet<Vec<u8>> = HashSet::new();
        for (from_utc, to_utc) in edges {
            self.call_keys(
                &Filter {
                    from_utc,
                    to_utc,
                    ..f.clone()
                },
                "1",
                &mut keys,
            )?;
        }
        if split.no_start {
            self.call_keys(f, "start_utc IS NULL", &mut keys)?;
        }
        let mut seen = self
            .conn
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM main.cdr_call WHERE key = ? AND ({}) \
                 AND (mask & ?) != 0)",
                segments
                    .iter()
                    .map(|_| "(day >= ? AND day < ?)")
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ))
            .map_err(read("cannot read the calls summary"))?;
        let mut counted = 0i64;
        for key in &keys {
            let mut v = vec![Value::Blob(key.clone())];
            v.extend(day_values.iter().cloned());
            v.push(Value::Integer(mask));
            let hit: bool = seen
                .query_row(params_from_iter(v), |r| r.get(0))
                .map_err(read("cannot read the calls summary"))?;
            counted += i64::from(hit);
        }
        let n = per_day - repeats + keys.len() as i64 - counted;
        Ok(n.max(0) as u64)
    }

    /// The call keys of the records matching `f` and `extra` (SQL without values), into `keys`.
    fn call_keys(
        &self,
        f: &Filter,
        extra: &str,
        keys: &mut HashSet<Vec<u8>>,
    ) -> Result<(), JournalError> {
        let (w, values) = where_clause(f);
        let mut s = self
            .conn
            .prepare_cached(&format!(
                "SELECT DISTINCT {CALL_KEY_FN}(pbx, linked_id, unique_id, channel) \
                 FROM main.cdr WHERE {extra} AND {w}"
            ))
            .map_err(sql(&self.db, "cannot count calls"))?;
        let mut rows = s
            .query(params_from_iter(values))
            .map_err(sql(&self.db, "cannot count calls"))?;
        while let Some(r) = rows.next().map_err(sql(&self.db, "cannot count calls"))? {
            match r.get_ref(0).map_err(sql(&self.db, "cannot count calls"))? {
                ValueRef::Text(k) | ValueRef::Blob(k) => keys.insert(k.to_vec()),
                _ => false,
            };
        }
        Ok(())
    }

    /// [`count_calls`](Self::count_calls) from the table alone (the summary's differential
    /// tests compare the two).
    pub fn count_calls_scan(&self, f: &Filter) -> Result<u64, JournalError> {
        let (w, values) = where_clause(f);
        let q = format!(
            "SELECT count(DISTINCT {CALL_KEY_FN}(pbx, linked_id, unique_id, channel)) \
             FROM {} WHERE {w}",
            self.source
        );
        let n: i64 = self
            .conn
            .prepare_cached(&q)
            .and_then(|mut s| s.query_row(params_from_iter(values), |r| r.get(0)))
            .map_err(sql(&self.db, "cannot count calls"))?;
        Ok(n.max(0) as u64)
    }
}

/// Days `[lo, hi)` (day numbers) without the `dirty` ones (sorted): the runs left, and each
/// dirty day inside as a range of starts (Unix seconds) to count from the table.
fn cut_out(lo: i64, hi: i64, dirty: &[i64]) -> (Vec<(i64, i64)>, Vec<store::Span>) {
    let mut runs = Vec::new();
    let mut edges = Vec::new();
    let mut at = lo;
    for &d in dirty.iter().filter(|d| (lo..hi).contains(*d)) {
        if d > at {
            runs.push((at, d));
        }
        edges.push((Some(d * store::DAY), Some((d + 1) * store::DAY)));
        at = d + 1;
    }
    if hi > at {
        runs.push((at, hi));
    }
    (runs, edges)
}

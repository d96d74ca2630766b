//! The data routes: `/api/calls` (one page of records, grouped into calls), `/api/stats`
//! (whole-range call statistics) and `/export.*` (streamed downloads). Checks parameters and
//! builds answers; the records come from the [`Backend`](super::Backend).

use std::io;

use serde_json::{json, Value};

use super::{backend_error, bad_param, App, Body, Request, Response};
use crate::calls::{call_key, group, Call};
use crate::filter::{Filter, Sort};
use crate::record::CallRecord;
use crate::web::export::ExportFormat;
use crate::web::json::{listing_json, listing_record};
use crate::web::query::{Params, FILTER_PARAMS};
use crate::web::stats::{Bucket, StatsBuilder, DEFAULT_CALLBACK_SECONDS, DEFAULT_SLA_SECONDS};
use crate::web::BackendError;

/// Most bytes of records in one `/api/calls` answer; a page of huge records ends early.
pub const CALLS_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Parameters accepted by the filtered endpoints, per endpoint.
const PAGE_PARAMS: &[&str] = &["limit", "offset", "sort", "counts"];
const EXPORT_PARAMS: &[&str] = &["profile", "sort", "formulaGuard", "separator"];
const STATS_PARAMS: &[&str] = &["sla", "callbackMinutes", "trend"];

impl App {
    fn filter_params(&self, req: &Request, extra: &[&str]) -> Result<(Params, Filter), Response> {
        let params =
            Params::parse(&req.query, &[FILTER_PARAMS, extra]).map_err(|e| bad_param(&e))?;
        let mut filter = params
            .filter(&self.backend.timezone())
            .map_err(|e| bad_param(&e))?;
        // A name typed in the number fields finds the numbers it names (issue 13, item 2).
        let names = self.backend.names();
        if let Some(text) = &filter.source_contains {
            filter.source_numbers = names.numbers_named(text);
        }
        if let Some(text) = &filter.destination_contains {
            filter.destination_numbers = names.numbers_named(text);
        }
        Ok((params, filter))
    }

    pub(super) fn calls(&self, req: &Request) -> Response {
        let (params, filter) = match self.filter_params(req, PAGE_PARAMS) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let (sort, page) = match params.sort().and_then(|s| Ok((s, params.page()?))) {
            Ok(x) => x,
            Err(e) => return bad_param(&e),
        };
        // `counts=records` leaves the calls count out (`"calls": null`): it is a scan over the
        // whole filtered range (a call's legs can differ in disposition and straddle midnight,
        // so no day summary holds it), ~0.65 s on a million records here and seconds on a Pi.
        // The page asks for it apart (`/api/calls/count`), so its rows never wait on it.
        let with_calls = match params.counts_calls() {
            Ok(c) => c,
            Err(e) => return bad_param(&e),
        };
        // Bounded by bytes, not rows (issue 11, finding 3): each record in its listing form,
        // and the page ends early once CALLS_PAGE_BYTES are used; `returned` says how many
        // came, and the page asks for the next ones from offset + returned.
        let run = || -> Result<Vec<u8>, BackendError> {
            // `total` counts records (scripts rely on it); `calls` counts the calls they belong
            // to, by the rule the status and stats count by (issue 13, item 1).
            let total = self.backend.count(&filter)?;
            let calls = if with_calls {
                self.backend.count_calls(&filter)?.to_string()
            } else {
                "null".to_owned()
            };
            let mut records = Vec::with_capacity(64 * 1024);
            // The listing copies (bounded, no raw bytes) to group this page into calls.
            let mut small = Vec::new();
            let mut full = false;
            let names = self.backend.names();
            let walked = self.backend.query_each(&filter, sort, page, &mut |r| {
                if records.len() >= CALLS_PAGE_BYTES {
                    full = true;
                    return Err(io::Error::other("page full"));
                }
                if !small.is_empty() {
                    records.push(b',');
                }
                let (copy, _) = listing_record(r);
                let mut j = listing_json(r);
                j["callerName"] = Value::String(copy.caller_name());
                j["callKey"] = Value::String(call_key(&copy));
                add_names(
                    &mut j,
                    &names,
                    &copy.source,
                    &copy.destination,
                    copy.agent.as_deref(),
                );
                serde_json::to_writer(&mut records, &j).map_err(io::Error::other)?;
                small.push(copy);
                Ok(())
            });
            match walked {
                Err(BackendError::Write(_)) if full => {}
                other => other?,
            }
            // A call's row shows its first record's start, so order the calls by that too
            // (records come newest first; a call's later leg would otherwise place it).
            let mut calls_here = group(&small);
            match sort {
                Sort::StartDesc => calls_here.sort_by_key(|c| std::cmp::Reverse(c.start_utc)),
                Sort::StartAsc => calls_here.sort_by_key(|c| c.start_utc),
                Sort::DurationDesc | Sort::DurationAsc => {}
            }
            let groups: Vec<Value> = calls_here
                .iter()
                .map(|c| {
                    let mut j = call_json(c, &small);
                    let first = c.legs.first().map(|&i| &small[i]);
                    add_names(
                        &mut j,
                        &names,
                        first.map_or("", |r| r.source.as_str()),
                        first.map_or("", |r| r.destination.as_str()),
                        c.answered_by.as_deref(),
                    );
                    j
                })
                .collect();
            let mut out = format!(
                "{{\"total\":{total},\"calls\":{calls},\"limit\":{},\"offset\":{},\"returned\":{},\"bytesLimited\":{full},\"groups\":",
                page.limit, page.offset, small.len()
            )
            .into_bytes();
            serde_json::to_writer(&mut out, &groups).map_err(io::Error::other)?;
            out.extend_from_slice(b",\"records\":[");
            out.extend_from_slice(&records);
            out.extend_from_slice(b"]}");
            Ok(out)
        };
        match run() {
            Ok(body) => Response::new(200, "application/json", Body::Bytes(body))
                .with_header("Cache-Control", "no-store"),
            Err(e) => backend_error(&e),
        }
    }

    /// `/api/calls/count`: how many records (`total`) and calls (`calls`) match, the two counts
    /// of `/api/calls` without a page — the calls page fetches it after its rows.
    pub(super) fn calls_count(&self, req: &Request) -> Response {
        let filter = match self.filter_params(req, &[]) {
            Ok((_, f)) => f,
            Err(r) => return r,
        };
        let counted = self
            .backend
            .count(&filter)
            .and_then(|total| Ok((total, self.backend.count_calls(&filter)?)));
        match counted {
            Ok((total, calls)) => Response::json(200, &json!({ "total": total, "calls": calls }))
                .with_header("Cache-Control", "no-store"),
            Err(e) => backend_error(&e),
        }
    }

    pub(super) fn stats(&self, req: &Request) -> Response {
        let (params, filter) = match self.filter_params(req, STATS_PARAMS) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let sla = match params.seconds("sla", DEFAULT_SLA_SECONDS, 3600) {
            Ok(s) => s,
            Err(e) => return bad_param(&e),
        };
        let callback = match params.seconds(
            "callbackMinutes",
            DEFAULT_CALLBACK_SECONDS / 60,
            7 * 24 * 60,
        ) {
            Ok(m) => m * 60,
            Err(e) => return bad_param(&e),
        };
        // `trend=hour|day|week|month`; absent or `auto`: chosen from the range's length, or,
        // when the range is open at an end, from the span of the calls found.
        let trend = match params.get("trend").map(str::trim) {
            None | Some("" | "auto") => filter
                .from_utc
                .zip(filter.to_utc)
                .map(|(from, to)| Bucket::for_span(to.saturating_sub(from))),
            Some(t) => match Bucket::parse(t) {
                Some(b) => Some(b),
                None => {
                    return Response::error(
                        400,
                        Some("trend"),
                        &format!("trend: {t:?} is not one of auto, hour, day, week, month"),
                    )
                }
            },
        };
        let mut b = StatsBuilder::new(sla)
            .with_callback(callback)
            .with_trend(trend);
        let walked = self.backend.for_each(&filter, Sort::StartAsc, &mut |r| {
            b.add(r);
            Ok(())
        });
        match walked {
            Ok(()) => {
                let mut v = serde_json::to_value(b.finish()).unwrap_or(Value::Null);
                add_stats_names(&mut v, &self.backend.names());
                Response::json(200, &v)
            }
            Err(e) => backend_error(&e),
        }
    }

    pub(super) fn export(&self, req: &Request, ext: &str) -> Response {
        let Some(format) = ExportFormat::from_ext(ext) else {
            return Response::error(
                404,
                None,
                "exports are /export.csv, /export.json and /export.ndjson",
            );
        };
        let (params, filter) = match self.filter_params(req, EXPORT_PARAMS) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let profiles = self.exporter.profiles();
        let (profile, sort) = match params
            .profile(&profiles)
            .and_then(|p| Ok((p, params.get("sort").map(|_| params.sort()).transpose()?)))
        {
            Ok(x) => x,
            Err(e) => return bad_param(&e),
        };
        // The formula guard is on unless turned off by name (issue 11, finding 7).
        let formula_guard = match params.get("formulaGuard") {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Response::error(
                    400,
                    Some("formulaGuard"),
                    &format!("formulaGuard: {other:?} is not on or off (off writes cells a spreadsheet may run as formulas)"),
                )
            }
        };
        // `;` or `,` for CSV (the page picks by the browser's locale; the profile's own when
        // absent: `;` for excel).
        let separator = match params.get("separator") {
            None | Some("") => None,
            Some("semicolon" | ";") => Some(b';'),
            Some("comma" | ",") => Some(b','),
            Some(other) => {
                return Response::error(
                    400,
                    Some("separator"),
                    &format!("separator: {other:?} is not semicolon or comma"),
                )
            }
        };
        let name = download_name(
            &self.backend.status().box_name,
            &filter,
            &self.backend.timezone(),
            format.ext(),
        );
        Response::new(
            200,
            format.content_type(),
            Body::Export {
                format,
                profile,
                filter: Box::new(filter),
                sort: sort.unwrap_or(Sort::StartAsc),
                formula_guard,
                separator,
            },
        )
        .with_header(
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .with_header("Cache-Control", "no-store")
    }
}

/// One call of a page as `/api/calls` `groups[]`: what a person wants to know, and `legs`
/// (indices into `records` of the same answer).
fn call_json(c: &Call, records: &[CallRecord]) -> Value {
    let first = c.legs.first().map(|&i| &records[i]);
    json!({
        "key": c.key,
        "outcome": c.outcome.as_str(),
        "answeredBy": c.answered_by,
        "transferredTo": c.transferred_to,
        "queue": c.queue,
        "direction": c.direction.as_str(),
        "startUtc": c.start_utc,
        "durationSeconds": c.duration_seconds,
        "talkSeconds": c.talk_seconds,
        "waitSeconds": c.wait_seconds,
        "pbx": first.map(|r| r.pbx.clone()),
        "source": first.map(|r| r.source.clone()),
        "callerName": first.map(CallRecord::caller_name),
        "destination": first.map(|r| r.destination.clone()),
        "legs": c.legs,
    })
}

/// The people behind a row's numbers (`[names]` > learned from CallerID > `null`), added beside
/// the numbers; every older field keeps its name and meaning. `agentName` is the name of the
/// agent (a record) or of who answered (a call).
fn add_names(
    j: &mut Value,
    names: &crate::names::Names,
    source: &str,
    destination: &str,
    agent: Option<&str>,
) {
    let name = |n: &str| {
        names
            .name_of(n)
            .map_or(Value::Null, |s| Value::String(s.to_owned()))
    };
    j["sourceName"] = name(source);
    j["destinationName"] = name(destination);
    j["agentName"] = agent.map_or(Value::Null, name);
}

/// The people behind the stats' agents and top numbers (`[names]` > learned > `null`): each
/// agent gets `agentName`, each top caller and destination `numberName`, beside the fields
/// that were there (`name` stays the caller's own CallerID name).
fn add_stats_names(v: &mut Value, names: &crate::names::Names) {
    let name = |n: &str| {
        names
            .name_of(n)
            .map_or(Value::Null, |s| Value::String(s.to_owned()))
    };
    if let Some(agents) = v.get_mut("agents").and_then(Value::as_array_mut) {
        for a in agents {
            let n = name(a["agent"].as_str().unwrap_or_default());
            a["agentName"] = n;
        }
    }
    for list in ["topCallers", "topDestinations"] {
        if let Some(rows) = v.get_mut(list).and_then(Value::as_array_mut) {
            for r in rows {
                let n = name(r["number"].as_str().unwrap_or_default());
                r["numberName"] = n;
            }
        }
    }
}

/// A download's file name: the box's name and the dates the filter covers, in the PBX's zone
/// (`office-2026-11-01_2026-11-30.csv`; `to` is exclusive, so its day is the second before).
/// Only `A-Z a-z 0-9 - _ .` survive, so the header needs no quoting rules.
pub fn download_name(box_name: &str, f: &Filter, tz: &jiff::tz::TimeZone, ext: &str) -> String {
    let clean: String = box_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches(['-', '.']);
    let name = if clean.is_empty() { "cdrbox" } else { clean };
    let day = |utc: i64| {
        jiff::Timestamp::from_second(utc)
            .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%d").to_string())
            .ok()
    };
    let from = f.from_utc.and_then(day);
    let to = f.to_utc.and_then(|t| day(t - 1));
    let range = match (from, to) {
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => format!("{a}_{b}"),
        (Some(a), None) => format!("from-{a}"),
        (None, Some(b)) => format!("until-{b}"),
        (None, None) => "all".to_string(),
    };
    format!("{name}-{range}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_carry_the_box_and_the_dates() {
        let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        // 2026-11-01 00:00 and 2026-12-01 00:00 in Moscow (UTC+3).
        let nov = Filter {
            from_utc: Some(1_793_480_400),
            to_utc: Some(1_796_072_400),
            ..Filter::default()
        };
        assert_eq!(
            download_name("office", &nov, &tz, "csv"),
            "office-2026-11-01_2026-11-30.csv"
        );
        let day = Filter {
            from_utc: Some(1_793_480_400),
            to_utc: Some(1_793_480_400 + 86_400),
            ..Filter::default()
        };
        assert_eq!(
            download_name("office", &day, &tz, "json"),
            "office-2026-11-01.json"
        );
        assert_eq!(
            download_name("Офис \"Москва\"", &Filter::default(), &tz, "csv"),
            "cdrbox-all.csv"
        );
        assert_eq!(
            download_name(
                "pbx 2",
                &Filter {
                    to_utc: Some(1_793_480_400),
                    ..Filter::default()
                },
                &tz,
                "csv"
            ),
            "pbx-2-until-2026-10-31.csv"
        );
    }
}

#[cfg(test)]
mod stats_name_tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn stats_names_are_added_beside_the_numbers_and_nothing_is_renamed() {
        let names = crate::names::Names::new(
            BTreeMap::from([("1004".to_string(), "Carol White".to_string())]),
            HashMap::from([("1005".to_string(), "Dan (learned)".to_string())]),
        );
        let mut v = serde_json::json!({
            "agents": [{"agent": "1004", "offered": 3}, {"agent": "1005"}, {"agent": "PJSIP/x"}],
            "topCallers": [{"number": "1005", "name": "CallerID Dan"}],
            "topDestinations": [{"number": "+74991234567"}],
        });
        add_stats_names(&mut v, &names);
        assert_eq!(v["agents"][0]["agentName"], "Carol White");
        assert_eq!(v["agents"][0]["offered"], 3, "older fields kept");
        assert_eq!(v["agents"][1]["agentName"], "Dan (learned)");
        assert_eq!(v["agents"][2]["agentName"], Value::Null);
        assert_eq!(v["topCallers"][0]["numberName"], "Dan (learned)");
        assert_eq!(
            v["topCallers"][0]["name"], "CallerID Dan",
            "the CallerID name stays"
        );
        assert_eq!(v["topDestinations"][0]["numberName"], Value::Null);
    }
}

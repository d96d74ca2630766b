//! THE table of config keys: every key of `cdrbox.toml` is defined here once — type, default,
//! allowed values, unit, label, group, help, live or restart, secret. The parser, its messages,
//! the commented `config/cdrbox.toml` (generated from this, checked by a test) and the settings
//! form (served by `GET /api/config`) all read it.
//!
//! Adding a key: one entry below plus the field in the validated struct in `super` (with a
//! serde `rename`/`deserialize_with` if its name or type differs); then regenerate the default
//! file with `UPDATE_GOLDEN=1 cargo test --release --lib config::`. See /work/team/LANDED.md.

use super::checks;
use super::spec::{Apply, DefaultValue as D, Key, Kind, MapSpec, Unit};

/// One table of the file: its name, whether it is an array (`[[pbx]]`), the settings page's
/// title, the comment above it in the default file, and for a table of free keys (`[names]`)
/// how its entries are checked (it then has no entries in [`KEYS`]).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub array: bool,
    pub title: &'static str,
    pub doc: &'static str,
    pub map: Option<&'static MapSpec>,
}

/// `[names]`: who is behind an extension or number (issue 13, item 2). Shown beside numbers on
/// the calls page and in the API (`sourceName`, …) and searched by the calls page's text
/// fields. Where it has no entry, the CallerID name an extension sends on its own calls is used.
pub const NAMES: MapSpec = MapSpec {
    key_label: "Number",
    value_label: "Name",
    key_check: checks::phone_number,
    value_check: checks::person_name,
    max_entries: 5_000,
    help:
        "People's names by extension or phone number, one line each: \"101\" = \"Анна Петрова\". \
           The calls page and the API show them beside the numbers and find calls by them. An \
           extension with no line here is named by the CallerID name it sends on its own calls. \
           Numbers: digits, letters, + * # and _ (spaces and dashes are dropped); names: 1–64 \
           characters; at most 5000 lines. Applies at once, without a restart.",
    example: &[("101", "Анна Петрова")],
    apply: Apply::Live,
};

/// The tables in file order.
pub const TABLES: &[Table] = &[
    Table {
        name: "box",
        array: false,
        title: "Box",
        doc: "",
        map: None,
    },
    Table {
        name: "pbx",
        array: true,
        title: "PBX links",
        doc: "PBXs. One [[pbx]] table per Asterisk/FreePBX; each gets its own AMI link. None is \
              configured by default: add one here or on the web page (Settings). Remove the \
              leading \"#\" of the lines below to use the example. The PBX side needs a \
              manager.conf user with \"read = cdr,system\" and cdr_manager enabled (the web \
              page's Setup help shows the exact snippets).",
        map: None,
    },
    Table {
        name: "storage",
        array: false,
        title: "Storage and retention",
        doc: "",
        map: None,
    },
    Table {
        name: "web",
        array: false,
        title: "Web page",
        doc: "",
        map: None,
    },
    Table {
        name: "display",
        array: false,
        title: "Display",
        doc: "",
        map: None,
    },
    Table {
        name: "usb",
        array: false,
        title: "USB stick",
        doc: "",
        map: None,
    },
    Table {
        name: "log",
        array: false,
        title: "Logging",
        doc: "",
        map: None,
    },
    Table {
        name: "alarms",
        array: false,
        title: "Alarms by e-mail and webhook",
        doc: "Alarms that reach a person: one message when an alarm starts, one when it is over, \
              a reminder while it stands. Nothing is sent until smtp_url (with from and to) or \
              webhook_url is set. Try it with: cdrbox test-alarm --config FILE",
        map: None,
    },
    Table {
        name: "uplink",
        array: false,
        title: "Central PostgreSQL (uplink)",
        doc:
            "Every record forwarded once to a central PostgreSQL (README: Central PostgreSQL). \
              Nothing is sent until url is set. Print the central schema with: cdrbox uplink-schema",
        map: None,
    },
    Table {
        name: "names",
        array: false,
        title: "People and names",
        doc: "",
        map: Some(&NAMES),
    },
];

/// The CSV export profiles (USB stick, daily report); a test checks they are the exporter's.
const CSV_PROFILES: Kind = Kind::Choice {
    words: &["standard", "excel", "pbxlogger", "asterisk"],
    what: "a CSV profile",
};

const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}

/// Every key, in file order within each table.
pub const KEYS: &[Key] = &[
    // ---- [box] --------------------------------------------------------------------------
    Key::new("box", "name", Kind::Text(checks::name), D::Str("cdrbox"))
        .label("Box name")
        .group("Box")
        .help("Name of this box: shown on the web page and used in USB export folder names. 1–64 characters, no \"/\", \"\\\" or control characters."),
    // ---- [[pbx]] ------------------------------------------------------------------------
    Key::new("pbx", "name", Kind::Text(checks::name), D::Required("a short name for this PBX, e.g. \"office\""))
        .label("PBX name")
        .group("Connection")
        .example("\"office\"")
        .help("Short unique name of this PBX, stored with every record (1–64 characters)."),
    Key::new("pbx", "host", Kind::Text(checks::host), D::Required("the PBX's address, e.g. \"192.168.1.10\""))
        .label("Address")
        .group("Connection")
        .example("\"192.168.1.10\"")
        .help("Host name or IP address of the PBX. Changing it asks for the secret again, so the stored one is never sent to another machine."),
    Key::new("pbx", "port", Kind::Port, D::Int(5038))
        .label("AMI port")
        .group("Connection")
        .help("TCP port of the PBX's Manager Interface (AMI), 5038 unless manager.conf says otherwise."),
    Key::new("pbx", "username", Kind::Text(checks::any), D::Required("the user of a [section] in the PBX's manager.conf"))
        .label("AMI user")
        .group("Connection")
        .example("\"cdrbox\"")
        .help("AMI user: a [section] name in the PBX's /etc/asterisk/manager.conf."),
    Key::new("pbx", "secret", Kind::Secret, D::Str(""))
        .label("AMI secret")
        .group("Connection")
        .example("\"change-me\"")
        .help("That user's \"secret\". Never shown by the web page or the logs; on the page, leave it empty to keep the stored one."),
    Key::new("pbx", "auth", Kind::Choice { words: &["md5", "plain"], what: "" }, D::Str("md5"))
        .label("Login method")
        .group("Connection")
        .help("\"md5\" (challenge–response: the secret never crosses the wire) or \"plain\" (the secret is sent in clear text; switching to it asks for the secret again)."),
    Key::new("pbx", "enabled", Kind::Bool, D::Bool(true))
        .label("Record calls from this PBX")
        .group("Connection")
        .help("When off (false) the settings are kept but the box does not connect: no calls are recorded, and an alarm says so until it is switched back on."),
    Key::new("pbx", "timezone", Kind::Text(checks::timezone), D::Str(super::DEFAULT_TIMEZONE))
        .label("Time zone of the PBX clock")
        .group("Calls")
        .help("IANA time zone of the PBX's clock (\"Europe/Moscow\", \"America/New_York\", \"UTC\"). CDR times carry no zone, so this must be the zone of the PBX's /etc/localtime."),
    Key::new("pbx", "charset", Kind::Text(checks::charset), D::Str(super::DEFAULT_CHARSET))
        .label("Charset of non-UTF-8 text")
        .group("Calls")
        .help("Charset for bytes that are not valid UTF-8 (old phones, legacy caller names), as a WHATWG label: \"windows-1252\" (Western Europe), \"windows-1251\" (Cyrillic), \"koi8-r\", \"iso-8859-2\", … Valid UTF-8 is always read as UTF-8."),
    Key::new("pbx", "trunk_patterns", Kind::List(checks::regex), D::List(&[crate::record::DEFAULT_TRUNK_PATTERN]))
        .label("Trunk channel patterns")
        .group("Calls")
        .help("Regular expressions over channel names marking the outside (trunk) side of a call; they set each record's direction: trunk→extension inbound, extension→trunk outbound, else internal. An empty list means no trunks."),
    Key::new("pbx", "ping_interval_ms", int(1_000, 3_600_000), D::Int(20_000))
        .unit(Unit::Ms)
        .label("Keep-alive period")
        .group("Timing")
        .advanced()
        .help("How often the box sends a Ping to check the link."),
    Key::new("pbx", "ping_timeout_ms", int(1_000, 600_000), D::Int(10_000))
        .unit(Unit::Ms)
        .label("Keep-alive answer deadline")
        .group("Timing")
        .advanced()
        .help("How long a Ping may stay unanswered before the link is declared dead and reconnected."),
    Key::new("pbx", "connect_timeout_ms", int(100, 600_000), D::Int(10_000))
        .unit(Unit::Ms)
        .label("Connect time-out")
        .group("Timing")
        .advanced()
        .help("TCP connect time-out."),
    Key::new("pbx", "login_timeout_ms", int(100, 600_000), D::Int(10_000))
        .unit(Unit::Ms)
        .label("Login time-out")
        .group("Timing")
        .advanced()
        .help("Time-out for the banner, challenge and login answer together. Asterisk answers a bad login after about 1 s."),
    Key::new("pbx", "reconnect_quick_ms", int(100, 10_000), D::Int(1_000))
        .unit(Unit::Ms)
        .label("Quick reconnect spacing")
        .group("Timing")
        .advanced()
        .help("When a link that was logged in drops, the box reconnects at once and then retries this often (±10 %) for the quick retries below, before slowing down to at most 10 s apart. The PBX sends a call record only to a logged-in session, so every second without one is calls lost."),
    Key::new("pbx", "reconnect_quick_retries", int(0, 100), D::Int(5))
        .label("Quick reconnect retries")
        .group("Timing")
        .advanced()
        .help("How many quick retries follow the immediate one before the spacing grows (2, 4, 8, 10 s). 0: straight to the growing spacing."),
    Key::new("pbx", "cdr_db", Kind::Text(checks::cdr_db_url), D::Unset)
        .secret()
        .label("CDR database (FreePBX)")
        .group("CDR database")
        .restart()
        .example("\"mysql://cdrbox:change-me@192.168.1.10:3306/asteriskcdrdb\"")
        .help("Optional: the PBX's own CDR database, as mysql://USER:PASSWORD@HOST:3306/asteriskcdrdb (FreePBX keeps every call there). When set, the box fills the calls it missed while the AMI link was down from it and checks it periodically. Use a read-only user (README: GRANT SELECT ON asteriskcdrdb.cdr TO ...). Encrypted when the server offers TLS. Holds a password: never shown by the web page or the logs; on the page, leave it empty to keep the stored one."),
    Key::new("pbx", "cdr_db_table", Kind::Text(checks::sql_table), D::Str("cdr"))
        .label("CDR table")
        .group("CDR database")
        .advanced()
        .restart()
        .help("Table of the CDRs in that database: \"cdr\" on FreePBX, or database.table."),
    Key::new("pbx", "cdr_db_lookback_minutes", int(1, 10_080), D::Int(360))
        .unit(Unit::Minutes)
        .label("Longest call")
        .group("CDR database")
        .advanced()
        .restart()
        .help("The database dates a call by its start, so to find every call that ended while the link was down the box also asks for calls that started up to this long before: the longest call you expect."),
    Key::new("pbx", "cdr_db_reconcile_minutes", int(0, 10_080), D::Int(60))
        .unit(Unit::Minutes)
        .label("Check the database every")
        .group("CDR database")
        .restart()
        .help("How often the box compares the recent past in the database with its journal and stores the calls it lacks (also at start). 0 turns the periodic check off; gaps are still filled when a link comes back."),
    Key::new("pbx", "cdr_db_reconcile_hours", int(1, 720), D::Int(24))
        .unit(Unit::Hours)
        .label("Each check covers the last")
        .group("CDR database")
        .advanced()
        .restart()
        .help("How far back each periodic check looks."),
    Key::new("pbx", "cdr_db_settle_seconds", int(0, 3_600), D::Int(120))
        .unit(Unit::Seconds)
        .label("Ask the database after")
        .group("CDR database")
        .advanced()
        .restart()
        .help("How long after a call ended (or after a link came back) the box asks the database about it: the PBX writes the row when the call ends, and calls that ended just now are still arriving over the AMI link."),
    // ---- [storage] ----------------------------------------------------------------------
    Key::new("storage", "path", Kind::Path, D::Str("/var/lib/cdrbox"))
        .label("Journal location")
        .group("Journal")
        .restart()
        .help("Where the journal lives: a directory (holding journal.sqlite and journal.ring), or a file name ending in .db, .sqlite or .sqlite3 (the ring file goes beside it). SD card or USB stick."),
    Key::new("storage", "flush_interval_ms", int(100, 3_600_000), D::Int(60_000))
        .unit(Unit::Ms)
        .label("Longest wait before a database commit")
        .group("Journal")
        .restart()
        .help("Group commit period: each record is made durable on arrival in the ring file and moved into SQLite at most this much later. Longer means less flash wear."),
    Key::new("storage", "flush_records", int(1, 100_000), D::Int(500))
        .label("Commit after this many records")
        .group("Journal")
        .restart()
        .help("Group commit size: commit as soon as this many records wait."),
    Key::new("storage", "retention_days", int(0, 36_500), D::Int(0))
        .unit(Unit::Days)
        .label("Keep records for")
        .group("Retention")
        .restart()
        .help("Delete records older than this many days. 0 keeps them forever."),
    Key::new("storage", "max_size_mb", int(0, 10_000_000), D::Int(0))
        .unit(Unit::Mb)
        .label("Largest database size")
        .group("Retention")
        .restart()
        .help("Delete the oldest records when the database grows past this size. 0 means no limit (until the disk is full, which raises an alarm)."),
    Key::new("storage", "keep_uncopied", Kind::Bool, D::Bool(true))
        .label("Keep records not yet copied to a USB stick")
        .group("Retention")
        .restart()
        .help("When on (true), retention never deletes a record that no USB copy has taken yet."),
    Key::new("storage", "ring_kb", int(16, 1_048_576), D::Int(32_768))
        .unit(Unit::Kib)
        .label("Ring file size")
        .group("Journal")
        .advanced()
        .restart()
        .help("Size of the pre-zeroed ring file where every record is made durable on arrival and waits until it is in SQLite. It covers a stalled or full database: at office rates each call takes one 4 KiB block, so 32768 KiB holds 8192 calls — over 4 hours at 2,000 calls an hour (bursts pack several calls per block). Beyond it calls wait in memory (see below)."),
    Key::new("storage", "memory_queue_records", int(1_000, 10_000_000), D::Int(100_000))
        .label("Records held in memory when the disk fails")
        .group("Journal")
        .advanced()
        .restart()
        .help("Records held only in memory while the ring file and the database cannot take them (disk full or failing). Beyond this, new calls are dropped, counted, alarmed and listed in the gap ledger; the PBX links stay connected."),
    Key::new("storage", "memory_queue_kb", int(256, 1_048_576), D::Int(1_024))
        .unit(Unit::Kib)
        .label("Memory for records when the disk fails")
        .group("Journal")
        .advanced()
        .restart()
        .help("Memory those records may take, whatever their number: a PBX that sends huge records (thousands of custom fields) reaches this long before the record count. Beyond it new calls are dropped, counted, alarmed and listed in the gap ledger, as above. An ordinary call record takes about 2 KiB here, so the default holds some 500: hours of office calls, since the ring file takes them first. In a burst the PBX links stop reading for up to a second at a time while this is three quarters full, so a blast waits in the network buffers instead of in memory (RSS stays near 25 MB through a 50,000-call burst)."),
    // ---- [web] --------------------------------------------------------------------------
    Key::new("web", "listen", Kind::Listen, D::Str("0.0.0.0:80"))
        .label("Web page address and port")
        .group("Web page")
        .restart()
        .help("Address and port of the web page and API (\"0.0.0.0:80\" = every interface, port 80; \"127.0.0.1:8080\" = this machine only; \"[::]:80\" = IPv6 too)."),
    Key::new("web", "workers", int(1, 64), D::Int(4))
        .label("Web worker threads")
        .group("Web page")
        .advanced()
        .restart()
        .help("Threads serving web requests."),
    Key::new("web", "https", Kind::Bool, D::Bool(false))
        .label("HTTPS")
        .group("Web page")
        .restart()
        .help("Serve the page and API over HTTPS (TLS) on https_listen. On the first start with HTTPS the box makes a self-signed certificate and shows its SHA-256 fingerprint on the display and the Status page: compare it with what your browser shows the first time. Plain HTTP then only redirects to HTTPS. Your own certificate can be uploaded on the Status page."),
    Key::new("web", "https_listen", Kind::Listen, D::Str("0.0.0.0:443"))
        .label("HTTPS address and port")
        .group("Web page")
        .advanced()
        .restart()
        .help("Address and port of the page over HTTPS, when https is on (\"0.0.0.0:443\" = every interface, port 443)."),
    Key::new("web", "hostnames", Kind::List(checks::hostname), D::List(&[]))
        .label("DNS names of this box")
        .group("Web page")
        .advanced()
        .restart()
        .help("Names browsers may use for this box besides its IP addresses, \"localhost\" and its hostname (and <hostname>.local), e.g. [\"calls.office.lan\"]. A request naming any other host is refused (protection against DNS rebinding). A self-signed HTTPS certificate made after a change lists them too."),
    // ---- [display] ----------------------------------------------------------------------
    Key::new("display", "driver", Kind::Choice { words: &["ssd1306", "none"], what: "" }, D::Str("ssd1306"))
        .label("Display")
        .group("Display")
        .restart()
        .help("OLED driver: \"ssd1306\" (128×64 I2C panel) or \"none\". With \"ssd1306\" and no panel connected the box logs that once and carries on."),
    Key::new("display", "i2c_bus", Kind::Path, D::Str("/dev/i2c-1"))
        .label("I2C bus device")
        .group("Display")
        .advanced()
        .restart()
        .help("I2C bus device of the panel."),
    Key::new("display", "address", Kind::I2cAddress(&[0x3C, 0x3D]), D::Int(0x3C))
        .label("I2C address")
        .group("Display")
        .advanced()
        .restart()
        .help("7-bit I2C address of the panel: 0x3C (most boards) or 0x3D. Write \"0x3C\" or 60."),
    Key::new("display", "contrast", int(0, 255), D::Int(128))
        .label("Brightness")
        .group("Display")
        .restart()
        .help("Panel brightness (contrast)."),
    Key::new("display", "rotation", Kind::IntChoice(&[0, 180]), D::Int(0))
        .label("Rotation (degrees)")
        .group("Display")
        .restart()
        .help("0, or 180 when the panel is mounted upside down."),
    Key::new("display", "screensaver_minutes", int(0, 1440), D::Int(10))
        .unit(Unit::Minutes)
        .label("Screen saver after")
        .group("Display")
        .restart()
        .help("Time without any change before the screen saver (pixel shift and dimming) starts, against OLED burn-in. 0 disables it."),
    Key::new("display", "page_seconds", int(1, 3600), D::Int(5))
        .unit(Unit::Seconds)
        .label("Time per page")
        .group("Display")
        .restart()
        .help("How long each status page shows before the next one."),
    // ---- [usb] --------------------------------------------------------------------------
    Key::new("usb", "mount_root", Kind::Path, D::Str("/media/cdrbox"))
        .label("Where sticks are mounted")
        .group("USB stick")
        .advanced()
        .restart()
        .help("Where sticks are mounted (by the board's automounter): each directory under it is a stick."),
    Key::new("usb", "mounts_file", Kind::Path, D::Str("/proc/self/mounts"))
        .label("Mount table")
        .group("USB stick")
        .advanced()
        .restart()
        .help("The kernel's mount table, read to see sticks come and go."),
    Key::new("usb", "mode", Kind::Choice { words: &["new", "all"], what: "" }, D::Str("new"))
        .label("What a stick receives")
        .group("USB stick")
        .restart()
        .help("The records not copied to any stick before (\"new\"), or every record (\"all\")."),
    Key::new(
        "usb",
        "profile",
        CSV_PROFILES,
        D::Str("excel"),
    )
        .label("CSV profile on the stick")
        .group("USB stick")
        .restart()
        .help("CSV profile written next to the JSON: \"standard\", \"excel\" (BOM, \";\" separators, opens in Excel with Cyrillic intact), \"pbxlogger\" (Advanced PBX Data Logger columns) or \"asterisk\" (Asterisk's Master.csv layout)."),
    // ---- [log] --------------------------------------------------------------------------
    Key::new("log", "level", Kind::Text(checks::log_filter), D::Str("info"))
        .label("Log level")
        .group("Logging")
        .help("Log filter: error, warn, info, debug, trace or off, optionally per module (\"info,cdrbox::ami=debug\"). The RUST_LOG environment variable overrides it."),
    // ---- [alarms] -----------------------------------------------------------------------
    Key::new("alarms", "smtp_url", Kind::Secret, D::Str(""))
        .label("Mail server")
        .group("E-mail")
        .restart()
        .help("The mail server, e.g. smtp://alarms%40example.com:app-password@smtp.example.com:587, as smtp://user:password@host:587 (STARTTLS whenever the server offers it; add ?tls=required to refuse one that does not) or smtps://user:password@host:465 (TLS from the start). Write @ in the user or password as %40. Empty: no e-mail."),
    Key::new("alarms", "from", Kind::Text(checks::any), D::Str(""))
        .label("Sender address")
        .group("E-mail")
        .restart()
        .help("The From address of alarm mails, e.g. cdrbox <alarms@example.com>; most servers want the account of smtp_url."),
    Key::new("alarms", "to", Kind::List(checks::email), D::List(&[]))
        .label("Recipients")
        .group("E-mail")
        .restart()
        .help("Who receives alarm mails, e.g. [\"it@example.com\", \"boss@example.com\"]."),
    Key::new("alarms", "webhook_url", Kind::Secret, D::Str(""))
        .label("Webhook address")
        .group("Webhook")
        .restart()
        .help("An http:// or https:// address that receives every alarm as a JSON POST (Slack, Mattermost and Rocket.Chat incoming webhooks show its text field). Empty: no webhook."),
    Key::new("alarms", "webhook_token", Kind::Secret, D::Str(""))
        .label("Webhook token")
        .group("Webhook")
        .advanced()
        .restart()
        .help("Sent as Authorization: Bearer TOKEN with each webhook POST when set."),
    Key::new("alarms", "ca_file", Kind::Path, D::Unset)
        .example("\"/etc/cdrbox/company-ca.pem\"")
        .label("Trusted certificate authorities")
        .group("E-mail")
        .advanced()
        .restart()
        .help("A PEM file of certificate authorities to trust for the mail server and the webhook (a company CA, a self-signed server), besides the public ones."),
    Key::new("alarms", "link_down_minutes", int(0, 1440), D::Int(5))
        .unit(Unit::Minutes)
        .label("Mail when a link is down for")
        .group("When to send")
        .restart()
        .help("How long a PBX link must be down before an alarm is sent; 0 sends at once."),
    Key::new("alarms", "auth_failed_minutes", int(0, 1440), D::Int(0))
        .unit(Unit::Minutes)
        .label("Mail when the PBX refuses the login for")
        .group("When to send")
        .restart()
        .help("How long the PBX must keep refusing the box's AMI login (wrong username or secret) before an alarm is sent; 0 sends at once."),
    Key::new("alarms", "quiet_minutes", int(0, 1440), D::Int(0))
        .unit(Unit::Minutes)
        .label("Mail when no call arrives for")
        .group("When to send")
        .restart()
        .help("During business hours, a PBX whose link is up but which sends no call record for this long raises PBX QUIET: the classic sign that CDR output broke on the PBX side. 0 turns it off; 60 suits a busy office."),
    Key::new("alarms", "business_hours", Kind::Text(checks::business_hours), D::Str("Mon-Fri 09:00-18:00"))
        .label("Business hours")
        .group("When to send")
        .restart()
        .help("When calls are expected, in each PBX's own time zone, for quiet_minutes: days and a time range, several separated by commas, e.g. Mon-Fri 09:00-18:00, Sat 10:00-13:00."),
    Key::new("alarms", "storage_warning_percent", int(1, 99), D::Int(80))
        .unit(Unit::Percent)
        .label("Storage warning at")
        .group("When to send")
        .restart()
        .help("The storage holding the journal this full raises a STORAGE warning (page, display and mail)."),
    Key::new("alarms", "storage_critical_percent", int(2, 100), D::Int(95))
        .unit(Unit::Percent)
        .label("Storage critical at")
        .group("When to send")
        .restart()
        .help("This full raises the critical STORAGE alarm instead: recording stops when the storage is full. Must be above storage_warning_percent."),
    Key::new("alarms", "usb_copy_failed", Kind::Bool, D::Bool(true))
        .label("Mail when a USB copy fails")
        .group("When to send")
        .restart()
        .help("Send an alarm when copying calls to a USB stick fails (stick full, read-only or pulled out too early)."),
    Key::new("alarms", "gap_unfilled_hours", int(0, 168), D::Int(0))
        .unit(Unit::Hours)
        .label("Mail when a gap is not filled after")
        .group("When to send")
        .restart()
        .help("A time without recording (link down, box off) that no import filled this many hours after it ended raises GAP OPEN for its PBX, until the PBX's Master.csv or CDR database is imported for it. 0 turns it off; use it when a CDR database puller or regular imports are meant to fill every gap."),
    Key::new("alarms", "daily_report", Kind::Text(checks::time_of_day_or_off), D::Str(""))
        .label("Daily report at")
        .group("Daily report")
        .restart()
        .help("Every day at this time (HH:MM, e.g. 07:00, in the first PBX's time zone) mail a report of yesterday: totals, answer rate, missed calls not called back, each queue's service level, open gaps and the box's health, with yesterday's calls attached as CSV. Empty: no report."),
    Key::new("alarms", "daily_report_profile", CSV_PROFILES, D::Str("excel"))
        .label("CSV profile of the report")
        .group("Daily report")
        .restart()
        .help("The CSV profile of the daily report's attachment, as for the USB stick (usb.profile)."),
    Key::new("alarms", "callback_minutes", int(1, 1440), D::Int(240))
        .unit(Unit::Minutes)
        .label("A missed call is called back within")
        .group("Daily report")
        .restart()
        .help("A missed inbound call counts as called back when a call to that number, or an answered call from it, follows within this time; the report lists the others."),
    Key::new("alarms", "reminder_minutes", int(0, 43_200), D::Int(1440))
        .unit(Unit::Minutes)
        .label("Remind every")
        .group("When to send")
        .restart()
        .help("While an alarm stands, send a reminder this often; 0 never reminds."),
    // ---- [uplink] -----------------------------------------------------------------------
    Key::new("uplink", "url", Kind::Secret, D::Str(""))
        .label("Central database")
        .group("Central PostgreSQL")
        .restart()
        .help("The central PostgreSQL, e.g. postgres://cdrbox:password@db.example.com:5432/cdr?sslmode=verify-full. sslmode: verify-full (encrypted, certificate and name checked), require (encrypted, certificate not checked) or disable (plain text). Write @ in the password as %40. Empty: nothing is forwarded."),
    Key::new("uplink", "box_id", Kind::Text(checks::any), D::Str(""))
        .label("Box id")
        .group("Central PostgreSQL")
        .restart()
        .help("How this box is named in the central tables (column box_id); empty: the box name. Change it only before the first record is sent."),
    Key::new("uplink", "batch_records", int(1, 10_000), D::Int(500))
        .label("Records per batch")
        .group("Central PostgreSQL")
        .advanced()
        .restart()
        .help("At most this many records go in one transaction."),
    Key::new("uplink", "interval_ms", int(100, 3_600_000), D::Int(1000))
        .label("Look for new records every")
        .group("Central PostgreSQL")
        .advanced()
        .restart()
        .help("How long the uplink waits, in milliseconds, when everything is sent (also the first retry delay after an error)."),
    Key::new("uplink", "batch_timeout_ms", int(1_000, 3_600_000), D::Int(60_000))
        .unit(Unit::Ms)
        .label("Give up a batch after")
        .group("Central PostgreSQL")
        .advanced()
        .restart()
        .help("A connection attempt or one batch that gets no answer from the server for this long is given up and retried (nothing is lost: the batch is sent again). Keeps a link that went silent without a reset from holding the uplink until TCP gives up, minutes later. Raise it for a slow WAN with big batches."),
    Key::new("uplink", "ca_file", Kind::Path, D::Unset)
        .example("\"/etc/cdrbox/company-ca.pem\"")
        .label("Trusted certificate authorities")
        .group("Central PostgreSQL")
        .advanced()
        .restart()
        .help("A PEM file of certificate authorities to trust for the central server (a company CA, a self-signed server); without it the system's list."),
    Key::new("uplink", "keep_unsent", Kind::Bool, D::Bool(true))
        .label("Keep records not yet sent")
        .group("Central PostgreSQL")
        .restart()
        .help("While the central database is set, retention (age and size) never deletes a record the server has not confirmed; the journal then grows while the server is unreachable. Off (false): retention deletes by age and size whatever was sent."),
];

/// The entry for `table.key`.
pub fn find(table: &str, key: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.table == table && k.key == key)
}

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// Whether `key` of `table` must never leave the box nor be quoted in a message: marked secret
/// in the table, or (a key the table does not know, e.g. a typo) named like one.
pub fn is_secret(table: &str, key: &str) -> bool {
    match find(table, key) {
        Some(k) => k.secret,
        None => names_a_secret(key),
    }
}

/// Whether `text` mentions a secret key's name (`secret`, a key marked secret, or a word like
/// `password`), case-insensitively: a line that does is never quoted.
pub fn names_a_secret(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["secret", "password", "passwd", "token"]
        .iter()
        .any(|w| t.contains(w))
        || KEYS.iter().any(|k| k.secret && t.contains(k.key))
}

/// The keys of one table, in order.
pub fn keys_of(table: &str) -> impl Iterator<Item = &'static Key> + '_ {
    KEYS.iter().filter(move |k| k.table == table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_once_in_a_known_table() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                table(k.table).is_some(),
                "{}.{}: unknown table",
                k.table,
                k.key
            );
            assert!(
                !KEYS[..i]
                    .iter()
                    .any(|o| o.table == k.table && o.key == k.key),
                "{}.{} is defined twice",
                k.table,
                k.key
            );
            assert!(
                !k.help.is_empty() && k.label != k.key,
                "{}.{} needs a label and help",
                k.table,
                k.key
            );
            assert!(
                !k.help.contains('`'),
                "{}.{}: help is shown as plain text, no backticks",
                k.table,
                k.key
            );
        }
        // Keys of a table are contiguous, so the generated file groups them.
        for t in TABLES {
            let idx: Vec<usize> = KEYS
                .iter()
                .enumerate()
                .filter(|(_, k)| k.table == t.name)
                .map(|(i, _)| i)
                .collect();
            assert!(
                idx.windows(2).all(|w| w[1] == w[0] + 1),
                "keys of [{}] are not together",
                t.name
            );
        }
    }

    #[test]
    fn profile_choices_are_the_export_profiles() {
        let Some(Key {
            kind: Kind::Choice { words, .. },
            ..
        }) = find("usb", "profile")
        else {
            panic!("usb.profile is a choice");
        };
        let Some(Key {
            kind: Kind::Choice { words: report, .. },
            ..
        }) = find("alarms", "daily_report_profile")
        else {
            panic!("alarms.daily_report_profile is a choice");
        };
        assert_eq!(report, words);
        let names: Vec<&str> = crate::export::Profile::ALL
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(*words, names.as_slice());
    }
}

//! The `cdrbox` binary: parses the command line, loads the config, calls the library, and turns
//! errors into a message (the whole cause chain) and an exit code. No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use cdrbox::filter::FilterInput;
use cdrbox::runtime::{self, ExportArgs, SimArgs};

#[derive(Parser)]
#[command(
    name = "cdrbox",
    version,
    about = "Call-logger box for Asterisk/FreePBX: records every CDR from AMI exactly once"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the logger: AMI links, journal, display, web page and USB copy.
    Run {
        /// Configuration file (see config/cdrbox.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a simulated PBX and the logger on loopback with a temporary journal.
    Demo {
        /// Web page address for the demo.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// New simulated calls per second.
        #[arg(long, default_value_t = 0.5)]
        rate: f64,
        /// Keep the journal here instead of a temporary directory.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Stop after this many simulated calls (the logger keeps running).
        #[arg(long)]
        calls: Option<u64>,
        /// Exit after this many seconds (for scripted runs); 0 runs until Ctrl-C.
        #[arg(long, default_value_t = 0)]
        seconds: u64,
    },
    /// Write the journal's records (filtered) as JSON, NDJSON or CSV.
    Export(Box<ExportCmd>),
    /// Import Asterisk's Master.csv (cdr_csv): each call once, beside what AMI recorded.
    Import {
        /// Configuration file (its [storage] journal receives the records).
        #[arg(long, short)]
        config: PathBuf,
        /// The [[pbx]] the file comes from (its time zone and charset read it).
        #[arg(long)]
        pbx: String,
        /// Master.csv, or - for standard input.
        file: PathBuf,
        /// The PBX writes GMT (cdr.conf [csv] usegmtime=yes).
        #[arg(long)]
        usegmtime: bool,
        /// Optional columns: auto (by count, default), none, or a comma list of uniqueid,
        /// userfield, newcdrcolumns (cdr.conf [csv] loguniqueid, loguserfield, newcdrcolumns).
        #[arg(long)]
        columns: Option<String>,
    },
    /// Validate a configuration file and print what is wrong with it.
    CheckConfig {
        /// Configuration file to check (every problem is listed, with its line).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Serve a simulated Asterisk AMI that generates calls.
    SimPbx(SimCmd),
    /// Copy records to a directory exactly as the USB stick copy does (verified, with manifest).
    UsbExport {
        /// Configuration file ([usb] decides the format and which records are new).
        #[arg(long, short)]
        config: PathBuf,
        /// Target directory (created if missing).
        #[arg(long)]
        to: PathBuf,
    },
    /// Set the web page's password (first line of stdin when it is not a terminal).
    Passwd {
        /// Configuration file (the password file is kept beside it).
        #[arg(long, short)]
        config: PathBuf,
        /// admin (may change settings) or viewer (read-only).
        #[arg(long, default_value = "admin")]
        user: String,
    },
    /// Print the one-time setup code the first visit to the web page asks for (while no admin
    /// password is set).
    SetupCode {
        /// Configuration file of the box (the code is kept beside it).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Send a test alarm on every channel of [alarms] (e-mail, webhook) now and say whether
    /// each server accepted it.
    TestAlarm {
        /// Configuration file whose [alarms] channels are tried.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the central PostgreSQL schema of [uplink] (tables, views, version, the monthly
    /// partitions around today) for a DBA to run with psql; the box creates it itself too.
    UplinkSchema,
    /// Render one page of the OLED screen for the journal's current state to a PNG file.
    Display {
        /// Configuration file (its journal and [display] settings are drawn).
        #[arg(long, short)]
        config: PathBuf,
        /// Output PNG file.
        #[arg(long)]
        png: PathBuf,
        /// Which page of the rotation (1 = the first; the command lists them all).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        page: u32,
        /// Pixel scale (1-16).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
        scale: u32,
    },
}

#[derive(Args)]
struct ExportCmd {
    /// Configuration file (its [storage] journal is read; times are read in the first PBX's zone).
    #[arg(long, short)]
    config: PathBuf,
    /// json, ndjson or csv.
    #[arg(long, default_value = "csv")]
    format: String,
    /// CSV profile: standard (default), excel, pbxlogger or asterisk.
    #[arg(long)]
    profile: Option<String>,
    #[command(flatten)]
    filter: FilterCmd,
    /// Output file (stdout by default). Written to a temporary name and renamed when complete.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Write CSV cells exactly as the PBX sent them, without the formula guard (a cell starting
    /// with = + - @ … would then run as a formula in a spreadsheet).
    #[arg(long)]
    no_formula_guard: bool,
}

#[derive(Args)]
struct FilterCmd {
    /// Calls starting at or after this time (2026-11-22, "2026-11-22 10:00", RFC 3339, @unix).
    #[arg(long)]
    from: Option<String>,
    /// Calls starting before this time; a date alone means the end of that day.
    #[arg(long)]
    to: Option<String>,
    /// ANSWERED, "NO ANSWER", BUSY, FAILED, CONGESTION, CANCEL or UNKNOWN, any case (repeatable,
    /// or a comma list).
    #[arg(long)]
    disposition: Vec<String>,
    /// inbound (in), outbound (out), internal or unknown (repeatable, or a comma list).
    #[arg(long)]
    direction: Vec<String>,
    /// PBX name as in [[pbx]] name (repeatable, or a comma list).
    #[arg(long)]
    pbx: Vec<String>,
    /// Substring of the calling number or caller ID.
    #[arg(long)]
    source: Option<String>,
    /// Substring of the dialled number.
    #[arg(long)]
    destination: Option<String>,
    /// Account code, exactly.
    #[arg(long)]
    account_code: Option<String>,
    /// Queue name, exactly (calls that went through that queue).
    #[arg(long)]
    queue: Option<String>,
    /// Agent (the extension or member that answered), exactly.
    #[arg(long)]
    agent: Option<String>,
    /// Minimum duration in whole seconds.
    #[arg(long)]
    min_duration: Option<String>,
    /// Maximum duration in whole seconds.
    #[arg(long)]
    max_duration: Option<String>,
}

#[derive(Args)]
struct SimCmd {
    /// Address to listen on, e.g. 127.0.0.1:5038.
    #[arg(long, default_value = "127.0.0.1:5038")]
    listen: String,
    /// AMI user name the simulated PBX accepts.
    #[arg(long, default_value = "cdrbox")]
    username: String,
    /// AMI secret the simulated PBX accepts.
    #[arg(long, default_value = "cdrbox")]
    secret: String,
    /// New calls per second (0: none).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Stop generating after this many calls.
    #[arg(long)]
    calls: Option<u64>,
    /// Seed for the call generator (same seed, same calls).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The simulated PBX's time zone.
    #[arg(long, default_value = "Europe/Moscow")]
    timezone: String,
    /// Leave out the LinkedID/Sequence mappings (as a PBX without our cdr_manager.conf advice).
    #[arg(long)]
    no_mappings: bool,
    /// Run the simulated PBX's clock this many seconds ahead (negative: behind), as a PBX
    /// without NTP; the box shows the skew and warns past 10 s.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    clock_offset: f64,
}

fn main() -> ExitCode {
    // Before any thread exists: bounds the box's RSS in bursts (see the function).
    cdrbox::journal::limit_malloc_arenas();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => runtime::run_from_file(&config),
        Command::Demo {
            listen,
            rate,
            data,
            calls,
            seconds,
        } => runtime::demo(runtime::DemoArgs {
            listen,
            rate,
            data,
            calls,
            seconds,
        }),
        Command::Export(e) => {
            let e = *e;
            runtime::export(ExportArgs {
                config: e.config,
                format: e.format,
                profile: e.profile,
                output: e.output,
                formula_guard: !e.no_formula_guard,
                filter: FilterInput {
                    from: e.filter.from,
                    to: e.filter.to,
                    dispositions: e.filter.disposition,
                    directions: e.filter.direction,
                    pbx: e.filter.pbx,
                    source: e.filter.source,
                    destination: e.filter.destination,
                    account_code: e.filter.account_code,
                    queue: e.filter.queue,
                    agent: e.filter.agent,
                    min_duration: e.filter.min_duration,
                    max_duration: e.filter.max_duration,
                },
            })
        }
        Command::Import {
            config,
            pbx,
            file,
            usegmtime,
            columns,
        } => runtime::import(&runtime::ImportArgs {
            config,
            pbx,
            file,
            usegmtime,
            columns,
        })
        .map(|_| ()),
        Command::CheckConfig { config } => runtime::check_config(&config),
        Command::Passwd { config, user } => runtime::passwd(&config, &user),
        Command::SetupCode { config } => runtime::setup_code(&config),
        Command::TestAlarm { config } => runtime::test_alarm(&config),
        Command::UplinkSchema => {
            let now = cdrbox::clock::Clock::system().unix();
            print!("{}", cdrbox::uplink::schema::script(now));
            Ok(())
        }
        Command::UsbExport { config, to } => runtime::usb_export(&config, &to),
        Command::Display {
            config,
            png,
            page,
            scale,
        } => runtime::display_png(&config, &png, page as usize, scale),
        Command::SimPbx(s) => runtime::sim_pbx(SimArgs {
            listen: s.listen,
            username: s.username,
            secret: s.secret,
            rate: s.rate,
            calls: s.calls,
            seed: s.seed,
            timezone: s.timezone,
            mappings: !s.no_mappings,
            clock_offset: s.clock_offset,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cdrbox: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! The OLED adapter against fake I2C buses: the exact init byte stream and address
//! (embedded-hal-mock), what a redraw costs on the bus (a recording `I2c`), and that a failing or
//! panicking bus never stops the display thread — it retries with re-initialisation and reports.
//!
//! `cargo test --test integration display_oled::i2c_budget -- --nocapture` prints the numbers
//! quoted in board/display.md.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdrbox::clock::{Clock, Mono};
use cdrbox::config::{DisplayConfig, DisplayDriver};
use cdrbox::display::{
    render_frame, spawn, spawn_with, DisplayHealth, DisplayLoop, Frame, LoopSettings, Oled, Panel,
    PanelError, ScreenSettings,
};
use cdrbox::status::{DayTotals, LinkState, LinkStatus, StatusView, StorageStatus};
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction};

const S: Duration = Duration::from_secs(1);
const NOW: i64 = 1_795_860_000;

// ---------------------------------------------------------------------------------------------
// Fake buses

/// One write on the bus: (7-bit address, bytes after the address).
type Write = (u8, Vec<u8>);

/// Every write the panel makes. Shared so the test can read it while the panel owns the bus.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<Write>>>,
    /// While set, every transfer fails with "no ACK" (display unplugged).
    broken: Arc<AtomicBool>,
}

#[derive(Debug)]
struct BusError(ErrorKind);

impl embedded_hal::i2c::Error for BusError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

impl ErrorType for Recorder {
    type Error = BusError;
}

impl I2c for Recorder {
    fn transaction(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), BusError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(BusError(ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Address,
            )));
        }
        let mut log = self.log.lock().unwrap();
        for op in ops {
            match op {
                Operation::Write(bytes) => log.push((address, bytes.to_vec())),
                Operation::Read(buf) => buf.fill(0),
            }
        }
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<(u8, Vec<u8>)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// (transactions, bytes) of a captured stream, counting the address byte of each transaction
/// as the bus does.
fn cost(log: &[(u8, Vec<u8>)]) -> (usize, usize) {
    (log.len(), log.iter().map(|(_, b)| b.len() + 1).sum())
}

// ---------------------------------------------------------------------------------------------
// Views

fn view() -> StatusView {
    StatusView {
        now_utc: NOW,
        local_offset_seconds: 3 * 3600,
        box_name: "cdrbox".into(),
        ip_address: Some("192.168.1.50".into()),
        links: vec![LinkStatus {
            pbx: "FreePBX".into(),
            address: "10.0.0.5:5038".into(),
            state: LinkState::Up,
            since_utc: NOW - 3600,
            last_record_utc: Some(NOW - 600),
            banner: None,
            records: 10,
            reconnects: 0,
            discarded_frames: 0,
            pbx_clock_skew_ms: None,
        }],
        today: DayTotals {
            total: 41,
            answered: 35,
            missed: 6,
        },
        last_call_utc: Some(NOW - 600),
        storage: StorageStatus {
            free_bytes: 3 << 30,
            total_bytes: 15 << 30,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn a_call_arrives(v: &mut StatusView, at: i64) {
    v.today.total += 1;
    v.today.answered += 1;
    v.last_call_utc = Some(at);
    v.links[0].last_record_utc = Some(at);
    v.links[0].records += 1;
}

fn settings(page_interval: Duration, screensaver: Duration) -> LoopSettings {
    LoopSettings {
        screen: ScreenSettings {
            page_interval,
            screensaver,
            contrast: 0x7F,
        },
        retry_min: S,
        retry_max: 8 * S,
    }
}

const INIT: [&[u8]; 17] = [
    &[0xAE],
    &[0xD5, 0x80],
    &[0xA8, 0x3F],
    &[0xD3, 0x00],
    &[0x40],
    &[0x8D, 0x14],
    &[0x20, 0x00],
    &[0xDA, 0x12],
    &[0xA1],
    &[0xC8],
    &[0xD9, 0x21],
    &[0x81, 0x5F],
    &[0xDB, 0x40],
    &[0xA4],
    &[0xA6],
    &[0x2E],
    &[0xAF],
];

/// Command writes carry control byte 0x00.
fn commands(address: u8, cmds: &[&[u8]]) -> Vec<Transaction> {
    cmds.iter()
        .map(|c| {
            let mut b = vec![0x00];
            b.extend_from_slice(c);
            Transaction::write(address, b)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Byte streams

#[test]
fn init_sequence_and_address_exactly() {
    for (address, rotation, remap) in [(0x3C, 0, [0xA1, 0xC8]), (0x3D, 180, [0xA0, 0xC0])] {
        let mut init: Vec<&[u8]> = INIT.to_vec();
        let (seg, com) = ([remap[0]], [remap[1]]);
        init[8] = &seg;
        init[9] = &com;
        // Then our contrast: pre-charge (phase 1 = 1, phase 2 = 2) and 0x81 <contrast>.
        init.push(&[0xD9, 0x21]);
        init.push(&[0x81, 0x7F]);
        let mock = I2cMock::new(&commands(address, &init));
        let mut oled = Oled::new(mock, address, rotation);
        oled.init(0x7F).unwrap();
        oled.release().done();
    }
}

#[test]
fn contrast_and_power_off_bytes() {
    let mock = I2cMock::new(&commands(0x3C, &[&[0xD9, 0x21], &[0x81, 0x10], &[0xAE]]));
    let mut oled = Oled::new(mock, 0x3C, 0);
    oled.set_contrast(0x10).unwrap();
    oled.power_off().unwrap();
    oled.release().done();
}

#[test]
fn first_draw_is_a_full_frame_then_only_the_changed_rectangle() {
    let bus = Recorder::default();
    let mut oled = Oled::new(bus.clone(), 0x3C, 0);
    oled.init(0x7F).unwrap();
    let init = bus.take();
    assert_eq!(init.len(), 19);
    assert!(init.iter().all(|(a, _)| *a == 0x3C));

    let v = view();
    let frame = render_frame(&v, 0);
    oled.draw(&frame).unwrap();
    let full = bus.take();
    // Column range 0..127, page range 0..7, then 64 data writes of 0x40 + 16 bytes.
    assert_eq!(full[0].1, vec![0x00, 0x21, 0x00, 0x7F]);
    assert_eq!(full[1].1, vec![0x00, 0x22, 0x00, 0x07]);
    assert_eq!(full.len(), 66);
    assert!(full[2..].iter().all(|(_, b)| b.len() == 17 && b[0] == 0x40));
    // The data bytes are the frame in SSD1306 page layout (8 rows per byte, LSB on top).
    let data: Vec<u8> = full[2..]
        .iter()
        .flat_map(|(_, b)| b[1..].to_vec())
        .collect();
    for page in 0..8 {
        for x in 0..128 {
            let byte = data[page * 128 + x];
            for bit in 0..8 {
                let y = (page * 8 + bit) as i32;
                assert_eq!(byte >> bit & 1 == 1, frame.get(x as i32, y), "x={x} y={y}");
            }
        }
    }

    oled.draw(&frame).unwrap();
    assert!(bus.take().is_empty(), "same frame: nothing on the bus");

    let mut w = v.clone();
    w.today.missed += 1; // "Miss 6" → "Miss 7": a few columns of one text line
    oled.draw(&render_frame(&w, 0)).unwrap();
    let small = bus.take();
    let (_, bytes) = cost(&small);
    assert!(bytes < 150, "a one-digit change sent {bytes} bytes");
    assert!(small.len() >= 3);
}

/// The SSD1306's display RAM as the byte stream leaves it (horizontal addressing mode, the
/// column/page window commands 0x21/0x22), so a test can check what the glass would show.
struct Gddram {
    ram: [[u8; 128]; 8],
    cols: (usize, usize),
    pages: (usize, usize),
    at: (usize, usize),
}

impl Gddram {
    fn new() -> Self {
        Self {
            ram: [[0; 128]; 8],
            cols: (0, 127),
            pages: (0, 7),
            at: (0, 0),
        }
    }

    fn feed(&mut self, log: &[(u8, Vec<u8>)]) {
        for (_, bytes) in log {
            match bytes.as_slice() {
                [0x00, 0x21, a, b] => {
                    self.cols = (*a as usize, *b as usize);
                    self.at = (self.cols.0, self.pages.0);
                }
                [0x00, 0x22, a, b] => {
                    self.pages = (*a as usize, *b as usize);
                    self.at = (self.cols.0, self.pages.0);
                }
                [0x00, ..] => {}
                [0x40, data @ ..] => {
                    for d in data {
                        self.ram[self.at.1][self.at.0] = *d;
                        self.at.0 += 1;
                        if self.at.0 > self.cols.1 {
                            self.at.0 = self.cols.0;
                            self.at.1 = if self.at.1 >= self.pages.1 {
                                self.pages.0
                            } else {
                                self.at.1 + 1
                            };
                        }
                    }
                }
                other => panic!("unexpected write {other:02x?}"),
            }
        }
    }

    fn frame(&self) -> Frame {
        let mut f = Frame::new();
        for (page, row) in self.ram.iter().enumerate() {
            for (x, byte) in row.iter().enumerate() {
                for bit in 0..8 {
                    f.set(x as i32, (page * 8 + bit) as i32, byte >> bit & 1 == 1);
                }
            }
        }
        f
    }
}

#[test]
fn panel_ram_matches_the_frame_after_many_partial_draws() {
    let bus = Recorder::default();
    let mut oled = Oled::new(bus.clone(), 0x3C, 0);
    oled.init(0x7F).unwrap();
    let mut ram = Gddram::new();
    let mut v = view();
    let mut frames = vec![render_frame(&v, 0)];
    for i in 0..30 {
        a_call_arrives(&mut v, NOW + i * 97);
        if i % 3 == 0 {
            v.today.missed += 7;
        }
        v.usb = match i % 5 {
            0 => cdrbox::status::UsbState::NoStick,
            1..=3 => cdrbox::status::UsbState::Copying {
                percent: (i * 13 % 100) as u8,
            },
            _ => cdrbox::status::UsbState::SafeToRemove { records: i as u64 },
        };
        frames.push(render_frame(&v, (i % 2) as usize));
        frames.push(render_frame(&v, 0).shifted(1, -1));
    }
    for (i, frame) in frames.iter().enumerate() {
        oled.draw(frame).unwrap();
        ram.feed(&bus.take());
        assert_eq!(&ram.frame(), frame, "after draw {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// The loop, with simulated time

#[test]
fn loop_sends_nothing_while_nothing_changes() {
    let bus = Recorder::default();
    let b = bus.clone();
    let mut health = Vec::new();
    let t0 = Mono::ZERO;
    let mut lp = DisplayLoop::new(
        move || Ok(Oled::new(b.clone(), 0x3C, 0)),
        settings(5 * S, Duration::ZERO),
        |h| health.push(h),
        t0,
    );
    let mut v = view();
    assert_eq!(lp.step(&v, t0), None, "one still page: nothing scheduled");
    assert!(!bus.take().is_empty());
    for s in 1..=3600 {
        v.now_utc = NOW + s; // the producer republishes every second
        lp.step(&v, t0 + S * s as u32);
    }
    assert!(
        bus.take().is_empty(),
        "an hour of unchanged status: zero bytes"
    );
    drop(lp);
    assert_eq!(health, vec![DisplayHealth::Ok]);
}

#[test]
fn failing_bus_is_retried_with_reinit_backoff_and_reported() {
    let bus = Recorder::default();
    bus.broken.store(true, Ordering::SeqCst);
    let opens = Arc::new(AtomicUsize::new(0));
    let (b, o) = (bus.clone(), Arc::clone(&opens));
    let health = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&health);
    let t0 = Mono::ZERO;
    let mut lp = DisplayLoop::new(
        move || {
            o.fetch_add(1, Ordering::SeqCst);
            Ok(Oled::new(b.clone(), 0x3C, 0))
        },
        settings(5 * S, Duration::ZERO),
        move |x| h.lock().unwrap().push(x),
        t0,
    );
    let v = view();
    // Back-off 1, 2, 4, 8, 8 s: attempts at t = 0, 1, 3, 7, 15, 23.
    let mut attempts_at = Vec::new();
    for ms in (0..=24_000).step_by(250) {
        let before = opens.load(Ordering::SeqCst);
        let wake = lp.step(&v, t0 + Duration::from_millis(ms));
        if opens.load(Ordering::SeqCst) > before {
            attempts_at.push(ms / 1000);
        }
        assert!(wake.is_some(), "a failing panel always schedules a retry");
    }
    assert_eq!(attempts_at, vec![0, 1, 3, 7, 15, 23]);
    assert_eq!(lp.failures(), 6);
    {
        let health = health.lock().unwrap();
        assert_eq!(health.len(), 6);
        match &health[0] {
            DisplayHealth::Failing {
                error,
                attempts,
                retry_in,
            } => {
                assert!(
                    error.contains("0x3c") && error.contains("no ACK"),
                    "{error}"
                );
                assert!(error.contains("init"), "{error}");
                assert_eq!((*attempts, *retry_in), (1, S));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            health[5],
            DisplayHealth::Failing {
                attempts: 6,
                retry_in: _,
                ..
            }
        ));
        assert_eq!(health[5].alarm_code(), Some("DISPLAY ERROR"));
    }

    // Plugged back in: the next retry re-opens, re-initialises and sends a full frame.
    bus.broken.store(false, Ordering::SeqCst);
    bus.take();
    lp.step(&v, t0 + 31 * S);
    let log = bus.take();
    assert_eq!(opens.load(Ordering::SeqCst), 7);
    assert_eq!(log[0].1, vec![0x00, 0xAE], "re-initialised from scratch");
    assert_eq!(log.len(), 19 + 66, "init + contrast + full frame");
    assert_eq!(health.lock().unwrap().last(), Some(&DisplayHealth::Ok));
    assert_eq!(lp.failures(), 0);

    // Unplugged mid-run: the flush fails, reported, and the recovery redraws in full.
    bus.broken.store(true, Ordering::SeqCst);
    let mut w = v.clone();
    w.today.total += 1;
    lp.step(&w, t0 + 40 * S);
    match health.lock().unwrap().last() {
        Some(DisplayHealth::Failing { error, .. }) => assert!(error.contains("flush"), "{error}"),
        other => panic!("{other:?}"),
    }
    bus.broken.store(false, Ordering::SeqCst);
    lp.step(&w, t0 + 41 * S);
    assert_eq!(bus.take().len(), 19 + 66);
}

#[test]
fn open_errors_are_reported_and_retried() {
    let t0 = Mono::ZERO;
    let mut reports = Vec::new();
    let mut lp = DisplayLoop::new(
        || -> Result<Oled<Recorder>, PanelError> {
            Err(PanelError::Open {
                bus: "/dev/i2c-9".into(),
                reason: "No such file or directory".into(),
            })
        },
        settings(5 * S, Duration::ZERO),
        |h| reports.push(h),
        t0,
    );
    assert_eq!(lp.step(&view(), t0), Some(t0 + S));
    drop(lp);
    assert!(
        matches!(&reports[0], DisplayHealth::Failing { error, .. } if error.contains("/dev/i2c-9"))
    );
}

// ---------------------------------------------------------------------------------------------
// The thread

/// A panel whose every operation fails, or panics, as told.
struct Hostile {
    panic: bool,
}

impl Panel for Hostile {
    fn init(&mut self, _: u8) -> Result<(), PanelError> {
        Ok(())
    }
    fn draw(&mut self, _: &Frame) -> Result<(), PanelError> {
        if self.panic {
            panic!("driver bug");
        }
        Err(PanelError::Bus {
            address: 0x3C,
            step: "flush",
            kind: "bus error".into(),
        })
    }
    fn set_contrast(&mut self, _: u8) -> Result<(), PanelError> {
        Ok(())
    }
    fn power_off(&mut self) -> Result<(), PanelError> {
        Err(PanelError::Bus {
            address: 0x3C,
            step: "display off",
            kind: "bus error".into(),
        })
    }
}

fn survive(panic: bool) {
    let (tx, rx) = tokio::sync::watch::channel(view());
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&reports);
    let opens = Arc::new(AtomicUsize::new(0));
    let o = Arc::clone(&opens);
    let mut st = settings(5 * S, Duration::ZERO);
    st.retry_min = Duration::from_millis(1);
    st.retry_max = Duration::from_millis(4);
    let handle = spawn_with(
        move || {
            o.fetch_add(1, Ordering::SeqCst);
            Ok(Hostile { panic })
        },
        st,
        rx,
        Clock::system(),
        move |h| r.lock().unwrap().push(h),
    )
    .unwrap();
    // Keep publishing while the panel keeps failing; the caller is never blocked.
    let deadline = Instant::now() + 10 * S;
    let mut v = view();
    let want = if panic { 5 } else { 20 };
    while opens.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        v.today.total += 1;
        tx.send(v.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        opens.load(Ordering::SeqCst) >= want,
        "kept re-opening the panel"
    );
    assert!(!handle.is_finished(), "the display thread is still running");
    drop(tx);
    handle.join().expect("the display thread never panics out");
    let reports = reports.lock().unwrap();
    assert!(reports.len() >= want);
    let expect = if panic { "panicked" } else { "bus error" };
    assert!(reports[..reports.len() - 1]
        .iter()
        .all(|h| matches!(h, DisplayHealth::Failing { error, .. } if error.contains(expect))));
    assert_eq!(reports.last(), Some(&DisplayHealth::Stopped));
}

#[test]
fn thread_survives_a_failing_bus_and_stops_when_status_closes() {
    survive(false);
}

#[test]
fn thread_survives_a_panicking_driver() {
    // The panic message printed by the default hook is expected here.
    survive(true);
}

#[test]
fn thread_draws_changes_promptly_and_powers_off_at_the_end() {
    let bus = Recorder::default();
    let b = bus.clone();
    let (tx, rx) = tokio::sync::watch::channel(view());
    let handle = spawn_with(
        move || Ok(Oled::new(b.clone(), 0x3C, 0)),
        settings(5 * S, Duration::ZERO),
        rx,
        Clock::system(),
        |_| {},
    )
    .unwrap();
    let wait_for = |n: usize| {
        let deadline = Instant::now() + 10 * S;
        while bus.log.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        bus.take()
    };
    assert_eq!(wait_for(85).len(), 85, "init + full frame");
    let mut v = view();
    a_call_arrives(&mut v, NOW);
    tx.send(v).unwrap();
    assert!(!wait_for(3).is_empty(), "the change reached the panel");
    drop(tx);
    handle.join().unwrap();
    assert_eq!(
        bus.take().last().map(|(_, b)| b.clone()),
        Some(vec![0x00, 0xAE])
    );
}

#[test]
fn driver_none_and_missing_bus_log_once_and_carry_on() {
    let cfg = DisplayConfig {
        driver: DisplayDriver::None,
        i2c_bus: "/dev/i2c-1".into(),
        address: 0x3C,
        contrast: 0x7F,
        rotation: 0,
        screensaver: 600 * S,
        page_interval: 5 * S,
    };
    let (_tx, rx) = tokio::sync::watch::channel(view());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    assert!(spawn(cfg.clone(), rx.clone(), Clock::system(), move |h| s
        .lock()
        .unwrap()
        .push(h))
    .is_none());
    assert_eq!(*seen.lock().unwrap(), vec![DisplayHealth::Disabled]);

    let missing = DisplayConfig {
        driver: DisplayDriver::Ssd1306,
        i2c_bus: "/nonexistent/i2c-77".into(),
        ..cfg
    };
    let s = Arc::clone(&seen);
    assert!(spawn(missing, rx, Clock::system(), move |h| s
        .lock()
        .unwrap()
        .push(h))
    .is_none());
    let second = seen.lock().unwrap()[1].clone();
    match second {
        DisplayHealth::Absent { reason } => assert!(reason.contains("/nonexistent/i2c-77")),
        other => panic!("{other:?}"),
    };
}

// ---------------------------------------------------------------------------------------------
// The measurement quoted in board/display.md

/// Bus time for `bytes` in `transactions` at `hz`: 9 clocks per byte (8 + ACK) plus about two
/// for START/STOP per transaction.
fn bus_ms(transactions: usize, bytes: usize, hz: f64) -> f64 {
    (bytes * 9 + transactions * 2) as f64 / hz * 1000.0
}

/// The loop [`recorded_loop`] makes: a panel on a [`Recorder`] bus, health reports ignored.
type RecordedLoop = DisplayLoop<
    Oled<Recorder>,
    Box<dyn FnMut() -> Result<Oled<Recorder>, PanelError>>,
    fn(DisplayHealth),
>;

/// A healthy panel on a recording bus, pages every 5 s, screensaver after 600 s.
fn recorded_loop(t0: Mono) -> (Recorder, RecordedLoop) {
    let bus = Recorder::default();
    let b = bus.clone();
    let lp: RecordedLoop = DisplayLoop::new(
        Box::new(move || Ok(Oled::new(b.clone(), 0x3C, 0))),
        settings(5 * S, 600 * S),
        |_| {},
        t0,
    );
    (bus, lp)
}

#[test]
fn i2c_budget() {
    let report = |what: &str, log: &[(u8, Vec<u8>)]| {
        let (t, b) = cost(log);
        println!(
            "{what:<52} {t:>5} transactions {b:>6} bytes  {:>6.1} ms @100kHz {:>5.1} ms @400kHz",
            bus_ms(t, b, 100e3),
            bus_ms(t, b, 400e3)
        );
        (t, b)
    };
    println!("(each transaction's address byte counted; page_interval 5 s, screensaver 600 s)");

    // One healthy PBX: one still page.
    let t0 = Mono::ZERO;
    let (bus, mut lp) = recorded_loop(t0);
    let mut v = view();
    lp.step(&v, t0);
    report("start: init + contrast + full frame", &bus.take());

    for s in 1..=60u32 {
        v.now_utc = NOW + i64::from(s);
        lp.step(&v, t0 + S * s);
    }
    let (_, idle) = report("idle minute, status republished every 1 s", &bus.take());
    assert_eq!(idle, 0);

    a_call_arrives(&mut v, NOW + 61);
    lp.step(&v, t0 + 61 * S);
    let (_, one_call) = report("a call arrives (total, answered, last call)", &bus.take());
    assert!(one_call > 0 && one_call < 1139 / 2);

    let mut minute = Vec::new();
    for s in 62..=121u32 {
        v.now_utc = NOW + i64::from(s);
        if s % 10 == 0 {
            let at = v.now_utc;
            a_call_arrives(&mut v, at);
        }
        lp.step(&v, t0 + S * s);
        minute.extend(bus.take());
    }
    report("busy minute: 6 calls", &minute);

    lp.step(&v, t0 + 120 * S + 600 * S);
    report("screen saver starts (dim + 1 px shift)", &bus.take());
    lp.step(&v, t0 + 120 * S + 1200 * S);
    report("screen saver step (1 px shift, every 600 s)", &bus.take());
    let at = v.now_utc + 1800;
    a_call_arrives(&mut v, at);
    lp.step(&v, t0 + 121 * S + 1200 * S);
    report("call during screen saver (restore + redraw)", &bus.take());

    // Two PBXs: summary + links page rotate every 5 s.
    let (bus, mut lp) = recorded_loop(t0);
    let mut v = view();
    let mut second = v.links[0].clone();
    second.pbx = "Branch".into();
    v.links.push(second);
    lp.step(&v, t0);
    bus.take();
    for s in 1..=60u32 {
        lp.step(&v, t0 + S * s);
    }
    let (_, rotating) = report("two PBXs: two pages rotating, one minute", &bus.take());
    assert!(rotating > 0);
}

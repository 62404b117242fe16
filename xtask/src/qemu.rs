//! Running QEMU: one machine definition for both kernels, the accelerator
//! choice, the kernel command line (through fw_cfg), a timeout on every run,
//! and mapping the exit status to pass/fail (only isa-debug-exit's success
//! code passes; a timeout, a triple-fault reset or a crash fails).

use anyhow::{Context, Result};
use clap::ValueEnum;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How QEMU executes the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    /// Hardware virtualization: the TSC counts real cycles.
    Kvm,
    /// Plain TCG emulation: fast to boot, timings are not meaningful.
    Tcg,
    /// TCG with `-icount shift=0`: the TSC advances once per guest
    /// instruction, so costs are exact instruction counts.
    Icount,
}

impl Accel {
    /// KVM only where the CPU advertises vmx/svm and /dev/kvm opens; some
    /// hosts expose a software /dev/kvm that is far slower than TCG.
    pub fn detect() -> Accel {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let hw = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        let opens = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
        if hw && opens { Accel::Kvm } else { Accel::Tcg }
    }

    /// The name used in result files and headers.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
            Accel::Icount => "tcg-icount",
        }
    }

    /// The unit a TSC difference is in under this accelerator.
    #[allow(dead_code)]
    pub fn unit(self) -> &'static str {
        match self {
            Accel::Icount => "instructions",
            _ => "cycles",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host,-arch-capabilities"],
            Accel::Tcg => &["-accel", "tcg", "-cpu", "max"],
            Accel::Icount => &["-accel", "tcg", "-cpu", "max", "-icount", "shift=0"],
        }
    }
}

/// What the machine boots.
#[derive(Clone, Copy)]
pub enum Boot<'a> {
    /// One of our kernels' BIOS disk images.
    Disk(&'a Path),
    /// A Linux kernel with an initramfs and a kernel command line.
    Linux { kernel: &'a Path, initrd: &'a Path, append: &'a str },
}

/// What to boot and how.
pub struct RunSpec<'a> {
    pub boot: Boot<'a>,
    /// Our kernels' command line (passed through fw_cfg; ignored for Linux,
    /// whose command line is part of `Boot::Linux`).
    pub cmdline: &'a str,
    pub accel: Accel,
    pub timeout: Duration,
    pub gdb: bool,
}

/// QEMU exit status for isa-debug-exit value 0x10 (the kernels' success).
pub const EXIT_SUCCESS: i32 = 33;
/// QEMU exit status for isa-debug-exit value 0x11 (the kernels' failure).
pub const EXIT_FAILURE: i32 = 35;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The kernel reported success.
    Success,
    /// The kernel reported failure (panic, failed test, double fault).
    KernelFailure,
    /// QEMU exited some other way (e.g. 0 after a triple-fault reset with -no-reboot).
    Exited(Option<i32>),
    /// Killed after the timeout.
    Timeout(Duration),
}

/// The result of a run: how it ended and everything it printed.
pub struct Outcome {
    pub ending: Ending,
    pub output: String,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.ending == Ending::Success
    }

    pub fn describe(&self) -> String {
        match &self.ending {
            Ending::Success => "kernel exited: success".into(),
            Ending::KernelFailure => "kernel exited: FAILURE".into(),
            Ending::Exited(Some(0)) => {
                "QEMU exited without the kernel reporting (status 0: a triple fault reset the machine?)"
                    .into()
            }
            Ending::Exited(code) => format!("QEMU exited without the kernel reporting (status {code:?})"),
            Ending::Timeout(t) => format!("timed out after {} s", t.as_secs()),
        }
    }
}

fn command(spec: &RunSpec) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "pc", "-m", "256M", "-smp", "1", "-no-reboot", "-display", "none"])
        .args(["-monitor", "none", "-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(spec.accel.args());
    match spec.boot {
        Boot::Disk(image) => {
            cmd.arg("-drive").arg(format!("format=raw,file={}", image.display()));
        }
        Boot::Linux { kernel, initrd, append } => {
            cmd.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd).arg("-append").arg(append);
        }
    }
    // `nics=N` on the kernel command line puts N virtio-net NICs on one
    // QEMU hub (hub 0): frames one sends reach the others through QEMU's
    // device model, deterministically, with no host network involved.
    let nics = hal_logic::cmdline::Cmdline::new(spec.cmdline).get("nics").and_then(|n| n.parse::<u8>().ok());
    for i in 0..nics.unwrap_or(0).min(4) {
        cmd.arg("-netdev").arg(format!("hubport,hubid=0,id=nic{i}"));
        cmd.arg("-device").arg(format!("virtio-net-pci,netdev=nic{i},mac=52:54:00:12:34:{:02x}", 0x56 + i));
    }
    if !spec.cmdline.is_empty() {
        // QEMU's option parser treats ',' as a separator; ",," is a literal comma.
        cmd.arg("-fw_cfg").arg(format!(
            "name={},string={}",
            hal_logic::fwcfg::CMDLINE_FILE,
            spec.cmdline.replace(',', ",,")
        ));
    }
    if spec.gdb {
        cmd.args(["-s", "-S"]);
    }
    // `bench --profile`: the cost-profile plugin, while a profiled boot runs.
    cmd.args(crate::profile::qemu_args());
    cmd
}

fn ending(status: ExitStatus) -> Ending {
    match status.code() {
        Some(EXIT_SUCCESS) => Ending::Success,
        Some(EXIT_FAILURE) => Ending::KernelFailure,
        other => Ending::Exited(other),
    }
}

fn wait_with_timeout(child: &mut Child, deadline: Instant, timeout: Duration) -> Result<Ending> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(ending(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Ending::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Boot with the serial console on this terminal.
pub fn run_interactive(spec: &RunSpec) -> Result<Outcome> {
    let mut child = command(spec).spawn().context("starting qemu-system-x86_64")?;
    let ending = wait_with_timeout(&mut child, Instant::now() + spec.timeout, spec.timeout)?;
    Ok(Outcome { ending, output: String::new() })
}

/// Boot, capturing the serial output; `on_line` sees each line as it arrives
/// (for progress). QEMU's own stderr is appended to the output.
pub fn run_captured(spec: &RunSpec, mut on_line: impl FnMut(&str)) -> Result<Outcome> {
    let mut child = command(spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_owned();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + spec.timeout;
    let mut output = String::new();
    let ending = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                on_line(&line);
                output.push_str(&line);
                output.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Ending::Timeout(spec.timeout);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break wait_with_timeout(&mut child, deadline, spec.timeout)?;
            }
        }
    };
    // Drain whatever arrived after the loop ended.
    let _ = reader.join();
    for line in rx.try_iter() {
        on_line(&line);
        output.push_str(&line);
        output.push('\n');
    }
    let err = err_reader.join().unwrap_or_default();
    if !err.trim().is_empty() {
        output.push_str("[qemu stderr] ");
        output.push_str(err.trim());
        output.push('\n');
    }
    Ok(Outcome { ending, output })
}

//! Output when the reader has gone: `kubectl dr completion bash | head -1`, or any command
//! piped into something that stops reading. Rust ignores SIGPIPE, so a write to a closed
//! pipe fails with EPIPE, and `println!` turns that into a panic. As ripgrep and kubectl
//! do, a closed stdout ends the command quietly with exit 0: the reader asked for no more.

use std::fmt;
use std::io::Write;

/// The error of a write to a closed stdout; `main` ends the command with exit 0, silently.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `args` to stdout: `Err(StdoutClosed)` (within anyhow) when the reader has gone,
/// any other write error as it is.
pub fn write_fmt(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

/// `println!` that returns [`StdoutClosed`] instead of panicking on a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns [`StdoutClosed`] instead of panicking on a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write_fmt(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};

/// Whether stdout is a pipe or socket whose reader has gone (poll says POLLERR/POLLHUP for
/// the write end of a pipe without readers).
pub fn is_closed() -> bool {
    write_end_closed(libc::STDOUT_FILENO)
}

fn write_end_closed(fd: libc::c_int) -> bool {
    let mut fd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, a zero timeout.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready == 1 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// For the writes that do not go through [`outln!`] (`println!` in a command, clap's
/// completion scripts, which `expect` their writes): a panic caused by a closed stdout ends
/// the process with exit 0 and no panic text. Any other panic is reported as usual.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload =
            info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied()).unwrap_or_default();
        let broken_pipe = payload.contains("Broken pipe") || payload.contains("BrokenPipe") || payload.contains("os error 32");
        if broken_pipe && is_closed() {
            std::process::exit(0);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_closed_pipe_is_told_from_an_open_one() {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let open = super::write_end_closed(fds[1]);
        unsafe { libc::close(fds[0]) };
        let closed = super::write_end_closed(fds[1]);
        unsafe { libc::close(fds[1]) };
        assert!(!open && closed, "open: {open}, closed: {closed}");
    }
}

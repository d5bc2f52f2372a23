"""``tokentop statusline``: the command Claude Code runs as its ``statusLine`` (docs/limits.md).

Claude Code runs it after each assistant message with a JSON object on stdin and shows what it
prints. This command:

1. starts the previous statusLine command, if ``tokentop setup claude-statusline`` chained one
   (``--chain CMD``), with the same stdin, so it runs while this one works;
2. hands the JSON to the feed (``POST /v1/limits/statusline``) — a quota figure, the session's cost
   and model — and gets back Claude's windows as the feed knows them (the estimate, the OAuth
   figure) for when the JSON carries none. No feed running: nothing is sent, nothing is said;
3. prints one compact line — model · 5-hour % and reset countdown · weekly % · the session's $ —
   followed by the chained command's output.

It must never hold Claude Code up: this module imports only the standard library's smallest
parts (no tokentop.config, no HTTP library, no ``json``/``re``, no TOML parser unless a config file
names a feed), the exchange with the feed has a hard deadline (:data:`FEED_DEADLINE_S`), and any
failure still prints a line and exits 0. ``cli.main`` calls :func:`main` before building the
argument parser; ``tokentop setup claude-statusline`` installs :data:`LAUNCHER`, which skips the
console script's wrapper (it imports ``re``) as well.
"""

from __future__ import annotations

import os
import sys
import time

#: what Claude Code runs: ``<python> -P -c LAUNCHER [options]`` (``-P``: the current directory is not
#: searched, so a project's own ``tokentop/`` never shadows this one)
LAUNCHER = "import sys; from tokentop.commands.statusline import main; sys.exit(main(sys.argv[1:]))"
#: the whole exchange with the feed (connect, send, answer) must fit in this
FEED_DEADLINE_S = 0.03
#: the chained command may take this long before its output is given up on
CHAIN_DEADLINE_S = 5.0
#: stdin read at most (Claude Code's payload is a few KB)
MAX_INPUT = 65536
DEFAULT_FEED = "127.0.0.1:7411"
CONFIG_DIR_HEADER = "X-Tokentop-Claude-Config-Dir"
APP = "tokentop"


# -- reading JSON without importing ``re`` ----------------------------------------------------------

def loads(text: str) -> object:
    """``json.loads`` for the payload, through the C scanner that ``json`` itself uses, without
    importing ``json`` (whose decoder imports ``re``: measured 8 ms of CPU per run on the machine
    these figures come from, a third of the whole command). Anything unusual (another Python, bad
    JSON) takes the ``json`` module's own path, which gives the same result or the same error."""
    try:
        import _json

        scanner = _json.make_scanner(_Context)
        start = len(text) - len(text.lstrip())
        value, end = scanner(text, start)
        if text[end:].strip():
            raise ValueError("extra data")
        return value
    except Exception:
        import json

        return json.loads(text)


class _Context:
    """What the C scanner reads from a ``json.JSONDecoder`` (the standard choices)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo: dict = {}


# -- where the feed and its token are (what tokentop.config / platformdirs say, without importing them)

def _home() -> str:
    return os.environ.get("HOME") or os.path.expanduser("~")


def _xdg(var: str, *default: str) -> str:
    value = os.environ.get(var, "").strip()
    return value if value else os.path.join(_home(), *default)


def config_file() -> str | None:
    explicit = os.environ.get("TOKENTOP_CONFIG")
    if explicit:
        return explicit
    directory = os.environ.get("TOKENTOP_CONFIG_DIR")
    if not directory:
        if sys.platform == "darwin":
            directory = os.path.join(_home(), "Library", "Application Support", APP)
        elif os.name == "posix":
            directory = os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), APP)
        else:
            import platformdirs  # Windows: the slow but exact way

            directory = platformdirs.user_config_dir(APP)
    return os.path.join(directory, "config.toml")


def state_dir() -> str:
    directory = os.environ.get("TOKENTOP_STATE_DIR")
    if directory:
        return directory
    if sys.platform == "darwin":
        return os.path.join(_home(), "Library", "Application Support", APP)
    if os.name == "posix":
        return os.path.join(_xdg("XDG_STATE_HOME", ".local", "state"), APP)
    import platformdirs

    return platformdirs.user_state_dir(APP)


def feed_address(explicit: str | None = None, config: str | None = None) -> str:
    """``--feed``, else ``TOKENTOP_FEED``, else the config file's ``[feed] url`` / ``listen``, else
    127.0.0.1:7411. The config file is parsed only when it has a ``[feed]`` table."""
    url = explicit or os.environ.get("TOKENTOP_FEED")
    if url:
        return url
    path = config or config_file()
    try:
        with open(path, "rb") as fh:  # type: ignore[arg-type]
            raw = fh.read()
    except (OSError, TypeError):
        return DEFAULT_FEED
    if b"[feed]" not in raw:
        return DEFAULT_FEED
    try:
        import tomllib

        feed = tomllib.loads(raw.decode("utf-8")).get("feed") or {}
    except (ValueError, UnicodeDecodeError):
        return DEFAULT_FEED
    return str(feed.get("url") or feed.get("listen") or DEFAULT_FEED)


def read_token() -> str | None:
    try:
        with open(os.path.join(state_dir(), "token"), "rb") as fh:
            return fh.read(512).decode("ascii", "ignore").strip() or None
    except OSError:
        return None


# -- the feed exchange -----------------------------------------------------------------------------

def _target(address: str) -> tuple[object, object] | None:
    """``(family, address)`` for a plain-HTTP or Unix-socket feed; ``None`` for what this path cannot
    reach quickly (https)."""
    import _socket

    if address.startswith("unix:"):
        return (_socket.AF_UNIX, address[5:])
    if address.startswith("https://"):
        return None
    rest = address[7:] if address.startswith("http://") else address
    hostport = rest.split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        host, port = hostport, "80"
    host = host.strip("[]") or "127.0.0.1"
    family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
    return (family, (host, int(port)))


def post(address: str, body: bytes, *, token: str | None, config_dir: str | None,
         deadline_s: float = FEED_DEADLINE_S) -> dict | None:
    """POST the payload; the feed's JSON answer, or ``None`` (no feed, too slow, refused)."""
    import _socket

    target = _target(address)
    if target is None:
        return None
    end = time.monotonic() + deadline_s
    family, where = target
    sock = _socket.socket(family, _socket.SOCK_STREAM)  # type: ignore[arg-type]
    try:
        sock.settimeout(deadline_s)
        sock.connect(where)
        host = where[0] if isinstance(where, tuple) else "localhost"
        head = [f"POST /v1/limits/statusline HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
                f"Content-Length: {len(body)}", "Connection: close"]
        if token:
            head.append(f"Authorization: Bearer {token}")
        if config_dir:
            head.append(f"{CONFIG_DIR_HEADER}: {''.join(c for c in config_dir if c.isprintable())}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "replace") + body)
        chunks = []
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:  # no feed (refused), too slow (timeout), gone
        return None
    finally:
        sock.close()
    answer = b"".join(chunks)
    status_line, _, rest = answer.partition(b"\r\n")
    if b" 200 " not in status_line + b" ":
        return None
    _, _, payload = rest.partition(b"\r\n\r\n")
    try:
        data = loads(payload.decode("utf-8"))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# -- the chained command ---------------------------------------------------------------------------

class Chained:
    """The previous statusLine command, started with our stdin; its output read until EOF or a deadline."""

    def __init__(self, command: str, data: bytes) -> None:
        self.pid: int | None = None
        self.fd: int | None = None
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        try:
            actions = [(os.POSIX_SPAWN_DUP2, r_in, 0), (os.POSIX_SPAWN_DUP2, w_out, 1)]
            actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in (r_in, w_in, r_out, w_out)]
            self.pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], os.environ, file_actions=actions)
        except (OSError, AttributeError):
            for fd in (r_in, w_in, r_out, w_out):
                os.close(fd)
            return
        os.close(r_in)
        os.close(w_out)
        self.fd = r_out
        try:
            os.set_blocking(w_in, False)
            os.write(w_in, data)  # a pipe takes 64 KiB at once; the payload is a few KB
        except OSError:
            pass
        finally:
            os.close(w_in)

    def output(self, deadline_s: float = CHAIN_DEADLINE_S) -> str:
        if self.fd is None:
            return ""
        import select

        end = time.monotonic() + deadline_s
        chunks = []
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    self._kill()
                    break
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self.fd)
            self.fd = None
        if self.pid is not None:
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except OSError:
                pass
        return b"".join(chunks).decode("utf-8", "replace").rstrip("\n")

    def _kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, 15)
            except OSError:
                pass


# -- the line ----------------------------------------------------------------------------------------

def countdown(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    minutes = int(seconds // 60)
    if minutes < 1:
        return "<1m"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _colour(text: str, used: float) -> str:
    if os.environ.get("NO_COLOR"):
        return text
    code = "31" if used >= 90 else "33" if used >= 70 else "32"
    return f"\x1b[{code}m{text}\x1b[0m"


def windows_of(obj: dict, answer: dict | None, now: float) -> dict[str, tuple[float, float | None, bool]]:
    """window → (used %, resets_at, estimated): Claude Code's own figures first, the feed's for the rest."""
    out: dict[str, tuple[float, float | None, bool]] = {}
    limits = obj.get("rate_limits")
    if isinstance(limits, dict):
        for key, name in (("five_hour", "5h"), ("seven_day", "7d")):
            w = limits.get(key)
            used = _num(w.get("used_percentage")) if isinstance(w, dict) else None
            if used is not None:
                reset = _num(w.get("resets_at"))  # type: ignore[union-attr]
                out[name] = (used, reset / 1000.0 if reset and reset > 1e11 else reset, False)
    for w in (answer or {}).get("windows") or ():
        if not isinstance(w, dict) or w.get("window") in out or w.get("window") not in ("5h", "7d"):
            continue
        used = _num(w.get("used_percent"))
        if used is not None and w.get("state") != "reset":
            out[w["window"]] = (used, _num(w.get("resets_at")), w.get("source") == "estimated")
    return out


def render(obj: dict, answer: dict | None, now: float) -> str:
    """``Opus 4.7 · 5h 62% ↻1h12m · 7d 40% · $1.23`` (parts without data are left out)."""
    parts = []
    model = obj.get("model") if isinstance(obj.get("model"), dict) else {}
    name = model.get("display_name") or model.get("id")  # type: ignore[union-attr]
    if isinstance(name, str) and name.strip():
        parts.append("".join(c for c in name.strip() if c.isprintable())[:40])
    windows = windows_of(obj, answer, now)
    five = windows.get("5h")
    if five is not None:
        used, reset, estimated = five
        text = _colour(f"{'~' if estimated else ''}{used:.0f}%", used)
        if reset is not None and reset > now:
            text += f" ↻{countdown(reset - now)}"
        parts.append(f"5h {text}")
    week = windows.get("7d")
    if week is not None:
        parts.append(f"7d {'~' if week[2] else ''}{_colour(f'{week[0]:.0f}%', week[0])}")
    cost = obj.get("cost") if isinstance(obj.get("cost"), dict) else {}
    usd = _num(cost.get("total_cost_usd"))  # type: ignore[union-attr]
    if usd is not None:
        parts.append(f"${usd:,.2f}")
    return " · ".join(parts) or "tokentop"


# -- the command -------------------------------------------------------------------------------------

def _options(argv: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        for name in ("--chain", "--feed", "--config"):
            if arg == name and i + 1 < len(argv):
                opts[name] = argv[i + 1]
                i += 1
            elif arg.startswith(name + "="):
                opts[name] = arg[len(name) + 1:]
        if arg == "--no-feed":
            opts["--no-feed"] = "1"
        i += 1
    return opts


def main(argv: list[str]) -> int:
    """Run the statusLine command (``argv``: what follows ``statusline``). Always exits 0."""
    now = time.time()
    try:
        opts = _options(argv)
        data = sys.stdin.buffer.read(MAX_INPUT + 1)[: MAX_INPUT]
    except Exception:
        opts, data = {}, b""
    chained = None
    line = "tokentop"
    try:
        if opts.get("--chain"):
            chained = Chained(opts["--chain"], data)
        try:
            obj = loads(data.decode("utf-8")) if data.strip() else {}
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            obj = {}
        obj = obj if isinstance(obj, dict) else {}
        answer = None
        if data.strip() and not opts.get("--no-feed"):
            config_dir = os.environ.get("CLAUDE_CONFIG_DIR", "").split(",")[0].strip() or os.path.join(_home(), ".claude")
            answer = post(feed_address(opts.get("--feed"), opts.get("--config")), data, token=read_token(),
                          config_dir=config_dir)
        line = render(obj, answer, now)
    except Exception:  # a status line is printed whatever happens
        pass
    out = line
    if chained is not None:
        try:
            theirs = chained.output()
        except Exception:
            theirs = ""
        if theirs:
            out += "\n" + theirs
    try:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    except Exception:
        pass
    return 0


def register(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    """For ``tokentop --help`` (the command itself runs through :func:`main` before any parsing)."""
    p = sub.add_parser(
        "statusline",
        help="Claude Code's statusLine command: reads its JSON on stdin, hands the quota figures to the feed, "
             "prints one line (install with: tokentop setup claude-statusline)",
    )
    from tokentop.commands._common import add_feed_options

    add_feed_options(p)  # the feed: --feed, else TOKENTOP_FEED, else [feed] in the config, else 127.0.0.1:7411
    p.add_argument("--chain", metavar="COMMAND", help="run this previous statusLine command too; its output follows ours")
    p.add_argument("--no-feed", action="store_true", help="only print the line; send nothing")
    p.set_defaults(func=_run_parsed)


def _run_parsed(args) -> int:  # noqa: ANN001
    argv = []
    for name in ("chain", "feed", "config"):
        value = getattr(args, name, None)
        if value:
            argv += [f"--{name}", value]
    if getattr(args, "no_feed", False):
        argv.append("--no-feed")
    return main(argv)


if __name__ == "__main__":  # ``python -m tokentop.commands.statusline``: the leanest start-up
    sys.exit(main(sys.argv[1:]))

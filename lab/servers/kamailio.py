"""kamailio 5.6 as a registrar with digest auth and a proxy between registered users.

With ``tls`` (``lab.servers.certs.CertFiles``) it also accepts SIP over TLS on ``tls_port``
(the tls module, Debian's kamailio-tls-modules); a user registered over TLS is reached through the
connection it registered on (``fix_nated_register``: its Contact's port is not where it accepts).

Users live in a db_text ``subscriber`` table in the scratch directory; kamailio re-reads db_text
tables when their file changes, so users may be added while it runs. kamailio daemonises and keeps
its stdout open: its output goes to a file and it is stopped through its pid file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.servers.certs import CertFiles
from lab.servers.files import read_log, write_private
from lab.servers.ports import LOOPBACK, free_port

logger = logging.getLogger(__name__)

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"


def modules_dir() -> str:
    """Where this system's kamailio keeps its modules: Debian puts them under the multiarch triplet."""
    triplet = sysconfig.get_config_var("MULTIARCH") or ""
    candidates = [Path("/usr/lib") / triplet / "kamailio/modules"] if triplet else []
    candidates += [Path("/usr/lib64/kamailio/modules"), Path("/usr/lib/kamailio/modules")]
    candidates += sorted(Path("/usr/lib").glob("*/kamailio/modules"))
    found = next((c for c in candidates if (c / "tm.so").exists()), candidates[0])
    return str(found)


MODULES_DIR = modules_dir()

_CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
# One UDP worker: with two, a far end that answers at once has its 180 and 200 read by different
# workers, which may forward the 200 first; the phone then never sees the 180 (pjsip drops a 1xx after
# the 2xx), and a test expecting call.ringing fails although the phone did right.
children=1
tcp_children=2
auto_aliases=no
listen=udp:{host}:{port}
listen=tcp:{host}:{port}
{tls_listen}mpath="{modules}"

loadmodule "db_text.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"  # $T_rpl: the 302 a forwarding phone sent
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "nathelper.so"
{tls_modules}
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")

modparam("usrloc", "db_mode", 0)
modparam("db_text", "db_mode", 1)  # re-read a table file when it changes (add_user)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "min_expires", 10)
modparam("rr", "enable_double_rr", 1)
modparam("auth_db", "db_url", "text://{dbdir}")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "use_domain", 0)
modparam("auth_db", "load_credentials", "")

request_route {{
    xlog("L_INFO", "REQ $rm $ru from $si:$sp ($pr)\\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    remove_hf("Route");
    if (is_method("REGISTER")) {{
        if (!auth_check("$fd", "subscriber", "1")) {{
            xlog("L_NOTICE", "REGISTER auth failed for $fu from $si\\n");
            auth_challenge("$fd", "0");
            exit;
        }}
        if ($pr == "tls") {{
            fix_nated_register();
        }}
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("INVITE|SUBSCRIBE")) {{
        record_route();
    }}
    if ($rU == $null) {{
        sl_send_reply("484", "Address Incomplete");
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    if (is_method("INVITE")) {{
        t_on_failure("FOLLOW_REDIRECT");
    }}
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

# A phone that forwards a call answers its INVITE with 302 (Contact: the target at this domain,
# Diversion: the phone's extension and why): call the target instead, as a PBX does, with the
# Diversion header copied into the new INVITE (RFC 5806), so the target sees who forwarded it.
failure_route[FOLLOW_REDIRECT] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (!t_check_status("30[12]")) {{
        exit;
    }}
    $var(diversion) = $T_rpl($hdr(Diversion));
    $ru = $(T_rpl($ct){{nameaddr.uri}});
    xlog("L_INFO", "REDIRECT $ru contacts <$T_rpl($hdr(Contact)[*])> diversion <$var(diversion)>\n");
    if (!lookup("location")) {{
        t_reply("404", "Forwarding target not found");
        exit;
    }}
    if ($var(diversion) != $null && $var(diversion) != "") {{
        append_hf("Diversion: $var(diversion)\r\n");
    }}
    t_on_failure("FOLLOW_REDIRECT");
    if (!t_relay()) {{
        t_reply("500", "Forwarding failed");
    }}
    exit;
}}
"""


_TLS_CONFIG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = {cert}
private_key = {key}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


@dataclass
class Kamailio:
    """A running kamailio; ``host``/``port`` accept SIP over UDP and TCP."""

    workdir: Path
    host: str = LOOPBACK
    port: int = 0
    domain: str = LOOPBACK
    users: dict[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = None
    _table_mtime: float = 0.0
    tls: CertFiles | None = None
    tls_port: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "kamailio.log"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "kamailio.pid"

    @property
    def db_dir(self) -> Path:
        return self.workdir / "db"

    @property
    def config_path(self) -> Path:
        return self.workdir / "kamailio.cfg"

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_dir.mkdir(exist_ok=True)
        if not self.port:
            self.port = free_port()
        (self.db_dir / "version").write_text(
            "id(int,auto) table_name(string) table_version(int)\n0:subscriber:7\n0:location:9\n"
        )
        self._write_subscribers()
        tls_listen = tls_modules = ""
        if self.tls is not None:
            self.tls_port = self.tls_port or free_port()
            tls_listen = f"enable_tls=yes\nlisten=tls:{self.host}:{self.tls_port}\n"
            tls_cfg = self.workdir / "tls.cfg"
            tls_cfg.write_text(_TLS_CONFIG.format(cert=self.tls.cert, key=self.tls.key))
            tls_modules = f'loadmodule "tls.so"\nmodparam("tls", "config", "{tls_cfg}")'
        config = _CONFIG.format(
            host=self.host,
            port=self.port,
            modules=MODULES_DIR,
            dbdir=self.db_dir,
            tls_listen=tls_listen,
            tls_modules=tls_modules,
        )
        self.config_path.write_text(config)
        cmd = [
            KAMAILIO,
            "-f", str(self.config_path),
            "-P", str(self.pid_path),
            "-Y", str(self.workdir),  # runtime dir for the ctl/fifo files
            "-E",  # log to stderr, which goes to our file
            "-m", "64",
            "-M", "8",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        self._wait_started(timeout)
        tls = f", tls {self.tls_port}" if self.tls else ""
        logger.info(
            "kamailio listening on %s:%d (udp+tcp%s), log %s", self.host, self.port, tls, self.log_path
        )

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid_path.exists() and self.pid_path.read_text().strip() and self._listening():
                return
            if self._proc is not None and self._proc.poll() not in (None, 0):
                break
            time.sleep(0.05)
        raise RuntimeError(f"kamailio did not start; log:\n{self.log_text()[-3000:]}")

    def _listening(self) -> bool:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            return s.connect_ex((self.host, self.port)) == 0

    def add_user(self, user: str, password: str) -> None:
        """Add (or change) a subscriber; kamailio picks up the db_text change by itself."""
        self.users[user] = password
        self._write_subscribers()

    def _write_subscribers(self) -> None:
        lines = ["id(int,auto) username(string) domain(string) password(string)"]
        for i, (user, password) in enumerate(sorted(self.users.items()), start=1):
            lines.append(f"{i}:{user}:{self.domain}:{password}")
        path = self.db_dir / "subscriber"
        tmp = path.with_suffix(".tmp")
        write_private(tmp, "\n".join(lines) + "\n")
        # db_text reloads a table when its mtime changes, at one-second resolution: always move it on.
        stamp = max(time.time(), self._table_mtime + 1.0)
        os.utime(tmp, (stamp, stamp))
        self._table_mtime = stamp
        os.replace(tmp, path)

    def log_text(self) -> str:
        return read_log(self.log_path)

    def stop(self) -> None:
        pid = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(self.pid_path.read_text().strip())
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        deadline = time.monotonic() + 5
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        logger.info("kamailio stopped")

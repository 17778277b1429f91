#!/bin/bash
# Deskphone first boot, written to the boot partition by tools/flash.py provision.
#
#   firstboot.sh [enable]  from the kernel command line (systemd.run=): install and enable
#                          deskphone-firstboot.service, restore cmdline.txt, then the system reboots
#   firstboot.sh run       the real work (from that unit, or from cloud-init's runcmd): service user,
#                          firmware venv, /etc/deskphone with 0600 secrets, deskphone.service, cleanup
#
# For tests and image builders:
#   DESKPHONE_ROOT=DIR           act on DIR as the root file system (default /); user entries are
#                                written with useradd/groupadd --prefix DIR, nothing is started
#   DESKPHONE_BOOT=DIR           the boot partition (default $DESKPHONE_ROOT@BOOT_MOUNT@)
#   DESKPHONE_SKIP_INSTALL=1     log the apt/venv/pip/systemctl commands without running them
set -euo pipefail
umask 077

MODE=${1:-enable}
ROOT=${DESKPHONE_ROOT:-/}
ROOT=${ROOT%/}
BOOT=${DESKPHONE_BOOT:-$ROOT@BOOT_MOUNT@}
SRC=$BOOT/deskphone
SERVICE_USER=deskphone
VENV=/opt/deskphone/venv
UNIT_DIR=$ROOT/etc/systemd/system
WANTS=$UNIT_DIR/multi-user.target.wants
LOG=$ROOT/var/log/deskphone-firstboot.log
MARK='# deskphone-firstboot'
CMDLINE_ADDED='@CMDLINE_ADDED@'

mkdir -p "$(dirname "$LOG")"
log() { printf '%s firstboot: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | tee -a "$LOG" >&2; }
die() { log "FAILED: $*"; exit 1; }
# Commands that install software or talk to systemd: logged, and skipped on request (tests).
do_run() {
    log "run: $*"
    if [ "${DESKPHONE_SKIP_INSTALL:-0}" = 1 ]; then return 0; fi
    "$@"
}
prefix_opt() { if [ -n "$ROOT" ]; then printf -- '--prefix\n%s\n' "$ROOT"; fi; }

strip_boot_hooks() {
    if [ -f "$BOOT/cmdline.txt" ]; then
        local line
        line=$(head -n1 "$BOOT/cmdline.txt")
        line=${line/" $CMDLINE_ADDED"/}
        printf '%s\n' "$line" >"$BOOT/cmdline.txt"
    fi
    if [ -f "$BOOT/user-data" ]; then
        sed -i "/$MARK\$/d" "$BOOT/user-data"
    fi
}

enable_stage() {
    [ -f "$SRC/deskphone-firstboot.service" ] || die "no $SRC/deskphone-firstboot.service"
    install -d -m 0755 "$UNIT_DIR" "$WANTS"
    install -m 0644 "$SRC/deskphone-firstboot.service" "$UNIT_DIR/deskphone-firstboot.service"
    ln -sfn /etc/systemd/system/deskphone-firstboot.service "$WANTS/deskphone-firstboot.service"
    strip_boot_hooks
    sync
    log "deskphone-firstboot.service enabled; rebooting into it"
}

check_bundle() {
    [ -f "$SRC/bundle/SHA256SUMS" ] || die "no firmware bundle in $SRC/bundle"
    (cd "$SRC/bundle" && sha256sum --check --quiet SHA256SUMS) || die "firmware bundle checksums do not match"
}

create_user() {
    local group
    for group in audio gpio; do
        if ! grep -q "^$group:" "$ROOT/etc/group"; then
            mapfile -t prefix < <(prefix_opt)
            groupadd "${prefix[@]}" --system "$group"
            log "created group $group"
        fi
    done
    if ! grep -q "^$SERVICE_USER:" "$ROOT/etc/passwd"; then
        mapfile -t prefix < <(prefix_opt)
        useradd "${prefix[@]}" --system --user-group --no-create-home --home-dir /var/lib/deskphone \
            --shell /usr/sbin/nologin --groups audio,gpio --comment "deskphone firmware" "$SERVICE_USER"
        log "created user $SERVICE_USER"
    fi
    SERVICE_UID=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $3 }' "$ROOT/etc/passwd")
    SERVICE_GID=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $4 }' "$ROOT/etc/passwd")
    [ -n "$SERVICE_UID" ] || die "user $SERVICE_USER missing after useradd"
}

install_config() {
    install -d -m 0750 -o 0 -g "$SERVICE_GID" "$ROOT/etc/deskphone"
    install -m 0640 -o 0 -g "$SERVICE_GID" "$SRC/deskphone.toml" "$ROOT/etc/deskphone/deskphone.toml"
    install -m 0600 -o "$SERVICE_UID" -g "$SERVICE_GID" "$SRC/secrets.toml" "$ROOT/etc/deskphone/secrets.toml"
    if [ -f "$SRC/ca.pem" ]; then
        install -m 0644 -o 0 -g 0 "$SRC/ca.pem" "$ROOT/etc/deskphone/ca.pem"
    fi
    install -d -m 0750 -o "$SERVICE_UID" -g "$SERVICE_GID" "$ROOT/var/lib/deskphone"
    log "config and secrets installed in /etc/deskphone (secrets.toml 0600 $SERVICE_USER)"
}

install_firmware() {
    local wheelhouse=$SRC/bundle/wheelhouse wheel
    wheel=$(find "$SRC/bundle" -maxdepth 1 -name 'deskphone-*.whl' | head -n1)
    [ -n "$wheel" ] || die "no deskphone wheel in $SRC/bundle"
    install -d -m 0755 "$ROOT/opt/deskphone"
    # lgpio comes from Raspberry Pi OS (the venv sees it); pyalsaaudio is built from the sdist in the
    # wheelhouse, because the distribution's python3-alsaaudio (0.8) is older than the firmware needs.
    do_run apt-get install -y --no-install-recommends python3-venv python3-dev gcc libasound2-dev python3-lgpio
    do_run python3 -m venv --system-site-packages "$ROOT$VENV"
    do_run "$ROOT$VENV/bin/pip" install --no-index --find-links "$wheelhouse" "$wheel"
    # pjsua2 has no wheel on PyPI for the Pi: the installer adds one built as docs/SIP.md says
    # (its distribution may be called pjsua2 or pjsua2-python; install the file itself).
    local pjsua2_wheel
    pjsua2_wheel=$(find "$wheelhouse" -maxdepth 1 -name 'pjsua2*.whl' | head -n1)
    if [ -n "$pjsua2_wheel" ]; then
        do_run "$ROOT$VENV/bin/pip" install --no-index --find-links "$wheelhouse" "$pjsua2_wheel"
    fi
    do_run "$ROOT$VENV/bin/python" -c 'import pjsua2'
    log "firmware installed in $VENV"
}

install_units() {
    install -d -m 0755 "$UNIT_DIR" "$WANTS"
    install -m 0644 "$SRC/deskphone.service" "$UNIT_DIR/deskphone.service"
    ln -sfn /etc/systemd/system/deskphone.service "$WANTS/deskphone.service"
    log "deskphone.service enabled (watchdog $(grep -m1 '^WatchdogSec=' "$UNIT_DIR/deskphone.service"))"
}

cleanup() {
    rm -f "$WANTS/deskphone-firstboot.service" "$UNIT_DIR/deskphone-firstboot.service"
    strip_boot_hooks
    # Overwrite the secrets on the FAT partition before removing them.
    if command -v shred >/dev/null; then
        shred -u "$SRC/secrets.toml" || rm -f "$SRC/secrets.toml"
    fi
    rm -rf "$SRC"
    sync
    log "first-boot traces removed from the boot partition"
}

run_stage() {
    [ -f "$SRC/deskphone.toml" ] || die "nothing to install: no $SRC/deskphone.toml"
    log "installing device $(sed -n 's/^id = "\(.*\)"$/\1/p' "$SRC/deskphone.toml" | head -n1)"
    check_bundle
    create_user
    install_config
    install_firmware
    install_units
    cleanup
    printf 'provisioned %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$ROOT/var/lib/deskphone/.provisioned"
    if [ -z "$ROOT" ]; then
        do_run systemctl daemon-reload
        do_run systemctl start --no-block deskphone.service
    fi
    log "done"
}

case "$MODE" in
    enable) enable_stage ;;
    run) run_stage ;;
    *) die "usage: firstboot.sh [enable|run]" ;;
esac

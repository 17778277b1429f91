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
#   DESKPHONE_SKIP_INSTALL=1     log the venv/pip/systemctl commands without running them
#
# It needs nothing from the network: python3 and libasound2 from the image, the rest from the bundle.
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
    local wheelhouse=$SRC/bundle/wheelhouse wheel pip_wheel
    wheel=$(find "$SRC/bundle" -maxdepth 1 -name 'deskphone-*.whl' | head -n1)
    [ -n "$wheel" ] || die "no deskphone wheel in $SRC/bundle"
    pip_wheel=$(find "$wheelhouse" -maxdepth 1 -name 'pip-*.whl' | head -n1)
    [ -n "$pip_wheel" ] || die "no pip wheel in $wheelhouse"
    install -d -m 0755 "$ROOT/opt/deskphone"
    # The venv is read and run by the service user: world-readable, unlike everything else here.
    umask 022
    # Offline: the OS gives python3 and libasound2, the bundle everything else (pjsua2, pyalsaaudio
    # and lgpio built for this Python, make dist-pi). No apt, no index, no compiler. pip runs from its
    # wheel, so the image needs no python3-venv.
    do_run python3 -m venv --without-pip "$ROOT$VENV"
    do_run "$ROOT$VENV/bin/python" "$pip_wheel/pip" install --quiet --no-index --find-links "$wheelhouse" \
        pip "$wheel"
    # lgpio makes its notification FIFO in LG_WD (default: the working directory) when imported.
    local lg_wd
    lg_wd=$(mktemp -d)
    do_run env LG_WD="$lg_wd" "$ROOT$VENV/bin/python" -c 'import pjsua2, alsaaudio, gpiozero, paho.mqtt, lgpio'
    rm -rf "$lg_wd"
    umask 077
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
    if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
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

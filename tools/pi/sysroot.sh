#!/bin/bash
# sysroot.sh SUITE DIR PACKAGE...: arm64 Debian packages unpacked into DIR, for cross-compiling.
#
# The packages are fetched with `apt-get download` under a private apt state (its own sources, lists
# and cache, APT::Architecture "arm64") and unpacked with `dpkg-deb -x`: nothing on the host changes
# (installing :arm64 -dev packages on the host would make apt remove python3 and kamailio).
# MIRROR (default http://deb.debian.org/debian) is the Debian archive to read.
set -euo pipefail
suite=$1 dir=$(realpath -m "$2")
shift 2
mirror=${MIRROR:-http://deb.debian.org/debian}
state=$dir.apt
mkdir -p "$state"/{lists/partial,archives/partial,etc/preferences.d,etc/apt.conf.d,etc/sources.list.d} "$dir"
cat >"$state/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main
SRC
apt_opts=(
    -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
    -o "Dir::State=$state" -o "Dir::State::status=/dev/null" -o "Dir::Cache=$state"
    -o "Dir::Etc::SourceList=$state/etc/sources.list" -o "Dir::Etc::SourceParts=$state/etc/sources.list.d"
    -o "Dir::Etc::Parts=$state/etc/apt.conf.d" -o "Dir::Etc::PreferencesParts=$state/etc/preferences.d"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -qq
)
apt-get "${apt_opts[@]}" update
(cd "$state/archives" && apt-get "${apt_opts[@]}" download "$@")
for deb in "$state"/archives/*.deb; do
    dpkg-deb -x "$deb" "$dir"
done
echo "sysroot $dir ($suite arm64): $*"

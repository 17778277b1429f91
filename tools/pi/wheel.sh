# Sourced by the tools/pi build scripts.
# pack_wheel DIR NAME VERSION TAG OUT: DIR holds the wheel's files; writes NAME-VERSION.dist-info
# (METADATA from $METADATA if set, else a minimal one; WHEEL with TAG) and packs it with `wheel pack`,
# which writes the RECORD.
pack_wheel() {
    local dir=$1 name=$2 version=$3 tag=$4 out=$5
    local stage
    stage=$(mktemp -d)
    cp -a "$dir" "$stage/$name-$version"
    local info=$stage/$name-$version/$name-$version.dist-info
    mkdir -p "$info"
    if [ -n "${METADATA:-}" ]; then
        cp "$METADATA" "$info/METADATA"
    else
        printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\n' "$name" "$version" >"$info/METADATA"
    fi
    printf 'Wheel-Version: 1.0\nGenerator: deskphone tools/pi\nRoot-Is-Purelib: false\nTag: %s\n' "$tag" \
        >"$info/WHEEL"
    mkdir -p "$out"
    "${PYTHON:-python3}" -m wheel pack --dest-dir "$out" "$stage/$name-$version" >/dev/null
    rm -rf "$stage"
}

# Sourced by scripts/up, scripts/test and .ci/run: make .venv and install the project into it
# with the pip extras named as arguments (dev, embedded, grpcurl; none for the bare package),
# unless that was done since pyproject.toml last changed. Returns non-zero, having said why on
# stderr, when the install fails.
set -euo pipefail

fusou_ensure_venv() {
    local python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "FUSOU needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
        return 2
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    # The stamp holds the hash of pyproject.toml and the extras installed since it last
    # changed: a run asking for an extra not among them installs again, so does any change of
    # pyproject.toml (a run that installs after such a change records only its own extras).
    local stamp=".venv/.install-stamp"
    local wanted=" $* "
    local hash
    hash="$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')"
    local have=""
    if [ -f "$stamp" ] && [ "$(head -n 1 "$stamp")" = "$hash" ]; then
        have=" $(sed -n 2p "$stamp") "
    fi
    local missing=0 extra
    if [ ! -f "$stamp" ] || [ "$(head -n 1 "$stamp")" != "$hash" ]; then
        missing=1
    fi
    for extra in "$@"; do
        case "$have" in *" $extra "*) ;; *) missing=1 ;; esac
    done
    [ "$missing" = 0 ] && return 0

    local spec="."
    if [ $# -gt 0 ]; then
        spec=".[$(IFS=,; echo "$*")]"
    fi
    echo "installing FUSOU ($spec) into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" >&2; then
        echo "installing FUSOU ($spec) failed; see pip's message above." >&2
        case "$wanted" in *" embedded "*)
            echo "The embedded PostgreSQL (pgserver) has wheels for some Python versions only" \
                "($(.venv/bin/python -V)). Point FUSOU at a PostgreSQL 14+ server instead:" \
                "FUSOU_DATABASE_URL for scripts/up, FUSOU_TEST_DATABASE_URL for scripts/test" \
                "(or use PYTHON=python3.12 with a new .venv)." >&2 ;;
        esac
        return 1
    fi
    # Extras installed earlier under the same pyproject.toml are still there.
    local all
    all="$(printf '%s\n' $have "$@" | sort -u | tr '\n' ' ')"
    printf '%s\n%s\n' "$hash" "${all% }" > "$stamp"
}

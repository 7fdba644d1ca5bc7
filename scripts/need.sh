# Sourced by scripts/test and scripts/lint: collect missing tools, then stop naming each one
# and how to get it, instead of failing halfway with "command not found".
_missing=()
need() {  # need COMMAND HOW-TO-GET-IT
    command -v "$1" >/dev/null 2>&1 || _missing+=("  $1: $2")
}
need_module() {  # need_module PYTHON-MODULE HOW-TO-GET-IT
    python3 -c "import $1" >/dev/null 2>&1 || _missing+=("  python3 -c 'import $1' fails: $2")
}
need_done() {
    if [ "${#_missing[@]}" -gt 0 ]; then
        echo "$(basename "$0"): missing:" >&2
        printf '%s\n' "${_missing[@]}" >&2
        echo "A fresh machine gets everything with: bash .ci/run" >&2
        exit 1
    fi
}

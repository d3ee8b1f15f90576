# Shared by scripts/tables/*.sh: argument parsing (DATASET, --dry-run) for one paper table.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

parse_table_args() {
    local dataset=""
    for arg in "$@"; do
        case "$arg" in
            --dry-run) DRY_RUN=1 ;;
            -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
            *) dataset="$arg" ;;
        esac
    done
    select_dataset "${dataset:-toy}"
    SEEDS="${SEEDS:-1 2 3}"
}

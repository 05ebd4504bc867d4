#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the pipeline needs on a Debian 12 host, saying what it
# installs. Idempotent: a second run installs nothing.  Assumes nothing
# beyond a minimal Debian 12: apt runs as root, or through sudo otherwise.
#
# Environment:
#   TOOLS_DIR  where bindgen-cli is installed (default: $CACHE/tools)
set -euo pipefail

CACHE=${KVM_MSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvm-msr-rs}
TOOLS_DIR=${TOOLS_DIR:-$CACHE/tools}
BINDGEN_VERSION=${BINDGEN_VERSION:-0.72.1}

log() { printf '[setup] %s\n' "$*"; }

APT_PKGS=(rustc-web rust-web-src rustfmt-web rust-web-clippy
	  clang-22 lld-22 llvm-22 libclang-22-dev
	  bison flex libelf-dev libssl-dev cpio bc kmod
	  qemu-system-x86 busybox-static
	  bochs bochs-term bochsbios vgabios syslinux mtools dosfstools
	  gcc-multilib python3 make git
	  file xz-utils patch ca-certificates)
# cargo: Debian's (cargo-web, the same 1.96 as rustc-web) unless one is on
# PATH already (rustup's, say; cargo-web conflicts with Debian's rustup).
command -v cargo >/dev/null 2>&1 || APT_PKGS+=(cargo-web)

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "[setup] error: not root and no sudo: cannot run $*" >&2
		exit 1
	fi
}

missing=()
for p in "${APT_PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
# The kernel build is measured with Debian's rustc-web 1.96 (bookworm-security);
# plain bookworm carries 1.85. Upgrade an older install.
rv=$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null || true)
if [ -n "$rv" ] && dpkg --compare-versions "$rv" lt 1.96; then
	for p in rustc-web rust-web-src rustfmt-web rust-web-clippy; do
		case " ${missing[*]} " in *" $p "*) ;; *) missing+=("$p") ;; esac
	done
	NEED_UPDATE=1
fi

# trixie-backports is needed only to *download* linux-source-7.3; pin it
# low so nothing from it is ever installed over bookworm.
if [ ! -f /etc/apt/sources.list.d/kvm-msr-trixie-backports.sources ]; then
	log "adding trixie-backports (pinned at priority 50, download only)"
	as_root tee /etc/apt/sources.list.d/kvm-msr-trixie-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	as_root tee /etc/apt/preferences.d/kvm-msr-trixie-backports >/dev/null <<'PIN'
Package: *
Pin: release n=trixie-backports
Pin-Priority: 50
PIN
	NEED_UPDATE=1
fi

if [ ${#missing[@]} -gt 0 ] || [ "${NEED_UPDATE:-0}" = 1 ]; then
	log "apt-get update"
	as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
	log "installing apt packages: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$TOOLS_DIR/bin/bindgen" ]; then
	log "installing bindgen-cli $BINDGEN_VERSION into $TOOLS_DIR (cargo install --locked, ~4 min)"
	mkdir -p "$TOOLS_DIR"
	LIBCLANG_PATH=/usr/lib/llvm-22/lib cargo install --locked --quiet \
		--root "$TOOLS_DIR" --version "$BINDGEN_VERSION" bindgen-cli
fi
log "host ready"

#!/usr/bin/env bash
# A private mDNS lab: one switch namespace with a bridge, and per NAME a network namespace
# wired to it by a veth pair, running its own D-Bus system bus and avahi-daemon. Nothing is
# attached to the host's namespace: no route, no bridge port, no bus, no daemon there.
#
#   avahi-netns.sh up DIR NAME...        build the lab (tears down an old one in DIR first);
#                                        prints one line per NAME, tab-separated:
#                                        NAME  NETNS  DBUS_SYSTEM_BUS_ADDRESS  IPv4
#   avahi-netns.sh down DIR              kill the lab's daemons, delete its namespaces (idempotent)
#   avahi-netns.sh avahi-stop DIR NAME [SIGNAL]
#                                        stop NAME's avahi-daemon (default TERM; KILL for a
#                                        crash: no goodbye packets); its bus stays up
#   avahi-netns.sh avahi-start DIR NAME  start it again and wait until it runs
#   avahi-netns.sh exec DIR NAME CMD...  run CMD in NAME's namespace with its bus address
#
# Root only. DIR holds configs, sockets, pid files and daemon logs; namespaces are named
# om<hash of DIR>-NAME so labs in different directories never collide.
set -euo pipefail

# A caller may hand us a blocked signal mask (a libdispatch worker thread blocks nearly every
# signal, and the mask survives exec); the daemons must die on SIGTERM, so start over with an
# empty one. perl-base is Essential on Debian.
if [[ -z ${AVAHI_NETNS_UNBLOCKED:-} ]] && ! grep -Eq '^SigBlk:[[:space:]]*0+$' /proc/self/status; then
    export AVAHI_NETNS_UNBLOCKED=1
    exec perl -MPOSIX -e 'sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die "sigprocmask: $!"; exec @ARGV or die "exec: $!"' \
        -- "$BASH" "$0" "$@"
fi

die() { echo "avahi-netns: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: $0 up DIR NAME... | down DIR | avahi-stop DIR NAME [SIGNAL] | avahi-start DIR NAME | exec DIR NAME CMD..."
[[ $(id -u) -eq 0 ]] || die "must run as root"

command=$1
dir=$(realpath -m "$2")
shift 2
prefix="om$(printf '%s' "$dir" | sha256sum | cut -c1-6)-"
switch="${prefix}sw"

# Polls a command until it succeeds or the deadline (seconds) passes.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# True while PID exists and is not a zombie (an unreaped daemon must not count as running).
alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z ]]
}

# Kills the daemon whose pid is in FILE, but only if that pid still runs our config (pids
# are reused), then waits for it to exit.
kill_pidfile() {
    local file=$1 marker=$2 signal=${3:-TERM} pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"; then
        kill -s "$signal" "$pid" 2>/dev/null || true
        if ! wait_for 10 dead "$pid"; then
            kill -9 "$pid" 2>/dev/null || true
            wait_for 5 dead "$pid" || true
        fi
    fi
    rm -f "$file"
}
dead() { ! alive "$1"; }

# Runs "$@" in the background in a session of its own, holding none of our descriptors but
# 0-2 (set by the caller's redirections): a daemon must not keep the caller's pipes or
# sockets open (Foundation's Process, for one, sees its child exit only when they close).
# Bash marks its own fd 255 close-on-exec.
detach() {
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if ((fd > 2 && fd != 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid "$@"
    ) &
}

bus_address() { echo "unix:path=$dir/$1/dbus.sock"; }

avahi_running() {
    DBUS_SYSTEM_BUS_ADDRESS=$(bus_address "$1") dbus-send --system --print-reply --dest=org.freedesktop.Avahi / \
        org.freedesktop.Avahi.Server.GetState 2>/dev/null | grep -q 'int32 2'
}

avahi_start() {
    local name=$1 ns="${prefix}$1" conf="$dir/$1/avahi.conf"
    # ip netns exec gives a mount namespace of its own; unshare makes a private one in which
    # /run is a fresh tmpfs, so each daemon has its own /run/avahi-daemon (pid file, socket).
    DBUS_SYSTEM_BUS_ADDRESS=$(bus_address "$name") detach ip netns exec "$ns" \
        unshare --mount --propagation private sh -c 'mount -t tmpfs -o size=1m,mode=0755 lab-run /run && exec "$@"' sh \
        avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "$conf" \
        </dev/null >>"$dir/$name/avahi.log" 2>&1
    echo $! >"$dir/$name/avahi.pid"
    wait_for 20 avahi_running "$name" || die "avahi-daemon in $ns did not start; see $dir/$name/avahi.log"
}

avahi_stop() { kill_pidfile "$dir/$1/avahi.pid" "$dir/$1/avahi.conf" "${2:-TERM}"; }

down() {
    local sub
    for sub in "$dir"/*/; do
        [[ -d $sub ]] || continue
        sub=${sub%/}
        kill_pidfile "$sub/avahi.pid" "$sub/avahi.conf"
        kill_pidfile "$sub/dbus.pid" "$sub/dbus.conf"
        rm -f "$sub/dbus.sock"
    done
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep -F -- "$prefix" || true); do
        [[ $ns == "$prefix"* ]] && ip netns del "$ns" 2>/dev/null || true
    done
}

up() {
    [[ $# -ge 1 ]] || die "up needs at least one NAME"
    local name
    for name in "$@"; do
        [[ $name =~ ^[A-Za-z0-9]{1,12}$ ]] || die "NAME must be 1-12 letters or digits: $name"
    done
    down
    mkdir -p "$dir"
    # Any failure from here on (set -e, die) leaves nothing behind.
    lab_built=0
    trap '[[ $lab_built == 1 ]] || down' EXIT
    ip netns add "$switch"
    ip -n "$switch" link add br0 type bridge
    ip -n "$switch" link set br0 up

    local index=0 ns address
    for name in "$@"; do
        index=$((index + 1))
        ns="${prefix}${name}"
        address="10.250.0.$((10 + index))"
        mkdir -p "$dir/$name"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$switch" link add "p$index" type veth peer name lab0 netns "$ns"
        ip -n "$switch" link set "p$index" master br0
        ip -n "$switch" link set "p$index" up
        ip -n "$ns" addr add "$address/24" dev lab0
        ip -n "$ns" link set lab0 up

        cat >"$dir/$name/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$(bus_address "$name")</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
        cat >"$dir/$name/avahi.conf" <<EOF
[server]
host-name=$name
use-ipv4=yes
use-ipv6=no
allow-interfaces=lab0
enable-dbus=yes
disallow-other-stacks=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
[rlimits]
EOF
        detach ip netns exec "$ns" dbus-daemon --config-file="$dir/$name/dbus.conf" --nofork --nopidfile \
            </dev/null >>"$dir/$name/dbus.log" 2>&1
        echo $! >"$dir/$name/dbus.pid"
        wait_for 10 env DBUS_SYSTEM_BUS_ADDRESS="$(bus_address "$name")" dbus-send --system --print-reply \
            --dest=org.freedesktop.DBus / org.freedesktop.DBus.GetId \
            || die "dbus-daemon in $ns did not start; see $dir/$name/dbus.log"
    done
    for name in "$@"; do avahi_start "$name"; done
    lab_built=1
    index=0
    for name in "$@"; do
        index=$((index + 1))
        printf '%s\t%s\t%s\t%s\n' "$name" "${prefix}${name}" "$(bus_address "$name")" "10.250.0.$((10 + index))"
    done
}

case $command in
    up) up "$@" ;;
    down) down ;;
    avahi-stop) [[ $# -ge 1 && $# -le 2 ]] || die "avahi-stop DIR NAME [SIGNAL]"; avahi_stop "$@" ;;
    avahi-start) [[ $# -eq 1 ]] || die "avahi-start DIR NAME"; avahi_start "$1" ;;
    exec)
        [[ $# -ge 2 ]] || die "exec DIR NAME CMD..."
        name=$1; shift
        exec ip netns exec "${prefix}${name}" env DBUS_SYSTEM_BUS_ADDRESS="$(bus_address "$name")" AVAHI_COMPAT_NOWARN=1 "$@"
        ;;
    *) die "unknown command: $command" ;;
esac

#!/usr/bin/env bash
# Virtual sound hardware for the real-stream tests of the microphone and speaker, on a machine
# with no sound card. Two private PulseAudio daemons provide:
#   - a microphone "usbmic": a pipe source reading 16 kHz mono s16le PCM from DIR/mic.fifo.
#     PulseAudio reads the FIFO only while something records and only as fast as it is
#     written, so whoever feeds it must write in real time (silence while nobody speaks).
#     It has a daemon of its own, so that when it is unplugged there is no other source to
#     move its recording streams to: they fail, as they do on a Raspberry Pi's ALSA.
#   - a speaker "hatspeaker": a null sink; what is played on it can be recorded from its
#     monitor (parecord --server=$VIRTUAL_SPEAKER_SERVER --device=hatspeaker.monitor ...).
#     An idle null sink renders in 2 s blocks, so a recording would start 2 s late: a silent
#     low-latency stream (pacat from /dev/zero) keeps it rendering in 20 ms blocks.
# Both are visible to ALSA, hence to PortAudio / sounddevice, by those names through an
# asound.conf that routes them to their daemons with the pulse plugin.
#
#   tests/virtual_audio.sh start DIR    start (installing the Debian packages if missing); prints
#                                       KEY='value' lines for XDG_RUNTIME_DIR, ALSA_CONFIG_PATH,
#                                       VIRTUAL_MIC_FIFO, VIRTUAL_MIC_SERVER, VIRTUAL_SPEAKER_SERVER
#   tests/virtual_audio.sh unplug DIR [mic|speaker]   remove the microphone (default) or the
#                                       speaker, as if its cable were pulled
#   tests/virtual_audio.sh replug DIR [mic|speaker]   bring it back
#   tests/virtual_audio.sh stop DIR     stop both daemons
set -euo pipefail

usage="usage: virtual_audio.sh start|stop|unplug|replug DIR [mic|speaker]"
action=${1:?$usage}
dir=${2:?$usage}
which=${3:-mic}
mkdir -p "$dir"
chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
unset PULSE_SERVER
fifo="$dir/mic.fifo"
mic_server="unix:$dir/mic/pulse/native"
speaker_server="unix:$dir/speaker/pulse/native"
mic_args="source_name=usbmic file=$fifo format=s16le rate=16000 channels=1"
mic_args="$mic_args source_properties=device.description=USB-Microphone-virtual"
speaker_args="sink_name=hatspeaker rate=48000 channels=2"
speaker_args="$speaker_args sink_properties=device.description=Audio-HAT-Speaker-virtual"
keepalive_pid="$dir/speaker-keepalive.pid"

install_missing() {
    local need=() p
    for p in pulseaudio pulseaudio-utils libasound2-plugins libportaudio2; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    echo "virtual_audio: installing ${need[*]}" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$dir/apt.log" 2>&1; then
        echo "virtual_audio: could not install ${need[*]} (see $dir/apt.log)" >&2
        exit 1
    fi
}

# start_daemon NAME MODULE ARGS: a daemon with its runtime directory in DIR/NAME
start_daemon() {
    local rt="$dir/$1" _
    mkdir -p "$rt"
    chmod 700 "$rt"
    XDG_RUNTIME_DIR="$rt" pactl info >/dev/null 2>&1 && return 0
    # -n: no default.pa, only the modules named here; never exit when idle
    XDG_RUNTIME_DIR="$rt" pulseaudio --daemonize=yes -n --exit-idle-time=-1 --use-pid-file=yes \
        --log-target=file:"$dir/$1.log" \
        --load="module-native-protocol-unix auth-anonymous=1" --load="$2 $3" 2>>"$dir/$1.log"
    for _ in $(seq 100); do
        XDG_RUNTIME_DIR="$rt" pactl info >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "virtual_audio: PulseAudio ($1) did not start; see $dir/$1.log" >&2
    exit 1
}

start_keepalive() {
    if ! { [ -f "$keepalive_pid" ] && kill -0 "$(cat "$keepalive_pid")" 2>/dev/null; }; then
        pacat --server="$speaker_server" --device=hatspeaker --playback --raw --format=s16le \
            --rate=48000 --channels=2 --latency-msec=20 /dev/zero </dev/null >/dev/null 2>&1 &
        echo $! >"$keepalive_pid"
    fi
}

module_id() {  # module_id SERVER MODULE: ids of the loaded instances of MODULE (none if down)
    pactl --server="$1" list short modules 2>/dev/null | awk -v m="$2" '$2 == m {print $1}' || true
}

case "$action" in
start)
    install_missing
    [ -n "$(module_id "$mic_server" module-pipe-source)" ] || rm -f "$fifo"
    start_daemon mic module-pipe-source "$mic_args"
    start_daemon speaker module-null-sink "$speaker_args"
    pactl --server="$mic_server" set-default-source usbmic
    pactl --server="$speaker_server" set-default-sink hatspeaker
    start_keepalive
    cat >"$dir/asound.conf" <<CONF
pcm.usbmic {
    type pulse
    device usbmic
    server "$mic_server"
    hint { show on description "USB Microphone (virtual)" }
}
pcm.hatspeaker {
    type pulse
    device hatspeaker
    server "$speaker_server"
    hint { show on description "Audio HAT Speaker (virtual)" }
}
CONF
    echo "XDG_RUNTIME_DIR='$dir/speaker'"
    echo "ALSA_CONFIG_PATH='/usr/share/alsa/alsa.conf:$dir/asound.conf'"
    echo "VIRTUAL_MIC_FIFO='$fifo'"
    echo "VIRTUAL_MIC_SERVER='$mic_server'"
    echo "VIRTUAL_SPEAKER_SERVER='$speaker_server'"
    ;;
unplug)
    if [ "$which" = speaker ]; then
        for id in $(module_id "$speaker_server" module-null-sink); do
            pactl --server="$speaker_server" unload-module "$id"
        done
    else
        for id in $(module_id "$mic_server" module-pipe-source); do
            pactl --server="$mic_server" unload-module "$id"
        done
    fi
    ;;
replug)
    if [ "$which" = speaker ]; then
        if [ -z "$(module_id "$speaker_server" module-null-sink)" ]; then
            pactl --server="$speaker_server" load-module module-null-sink $speaker_args >/dev/null
        fi
        pactl --server="$speaker_server" set-default-sink hatspeaker
        start_keepalive
    else
        if [ -z "$(module_id "$mic_server" module-pipe-source)" ]; then
            rm -f "$fifo"
            pactl --server="$mic_server" load-module module-pipe-source $mic_args >/dev/null
        fi
        pactl --server="$mic_server" set-default-source usbmic
    fi
    ;;
stop)
    if [ -f "$keepalive_pid" ]; then
        kill "$(cat "$keepalive_pid")" 2>/dev/null || true
        rm -f "$keepalive_pid"
    fi
    for name in mic speaker; do
        [ -d "$dir/$name" ] && XDG_RUNTIME_DIR="$dir/$name" pulseaudio --kill 2>/dev/null || true
    done
    for _ in $(seq 40); do
        if ! pactl --server="$mic_server" info >/dev/null 2>&1 \
            && ! pactl --server="$speaker_server" info >/dev/null 2>&1; then
            exit 0
        fi
        sleep 0.05
    done
    echo "virtual_audio: PulseAudio did not stop" >&2
    exit 1
    ;;
*)
    echo "$usage" >&2
    exit 2
    ;;
esac

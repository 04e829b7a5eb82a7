# Shared by the benchmark scripts (sourced, not run): loopback ports, kernel
# settings changed for the run only, and a local nginx serving "ok".

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}

# bench_workdir: a temporary dir in $work that nginx's unprivileged workers
# can read, an empty $pids, and an EXIT trap that stops every pid in $pids,
# removes the dir (kept with KEEP=1) and restores the kernel settings.
bench_workdir() {
  work=$(mktemp -d)
  chmod 0755 "$work"
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
  restore_sysctls
}

# bench_modules: the modules both exporters run in the benchmarks, as a
# blackbox.yml (callers may append more modules).
bench_modules() {
  cat <<YAML
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
YAML
}

# set_sysctl NAME VALUE: changes a kernel setting for this run (root only;
# silently skipped otherwise), remembering its first value for
# restore_sysctls, which the scripts' EXIT trap calls.
saved_sysctls=()
set_sysctl() {
  local file=/proc/sys/${1//.//} old
  [[ -w $file ]] || return 0
  old=$(tr -s '\t' ' ' <"$file")
  saved_sysctls+=("$file=$old")
  echo "$2" >"$file" 2>/dev/null || true
}
restore_sysctls() {
  local i entry
  # Newest first, so a setting changed twice ends at its original value.
  for (( i = ${#saved_sysctls[@]} - 1; i >= 0; i-- )); do
    entry=${saved_sysctls[i]}
    echo "${entry#*=}" >"${entry%%=*}" 2>/dev/null || true
  done
}

# Settings for probing loopback targets as fast as both exporters can:
# every probe opens a new connection (as blackbox does), so TIME_WAIT ports
# are reused and the port range is wide; and the target's accept and SYN
# queues are deep enough that it never drops a SYN when the machine
# deschedules it for a moment (each dropped SYN costs a probe the kernel's
# 1 s SYN retransmit, which would be the target's tail, not the exporter's).
tune_for_probing() {
  set_sysctl net.ipv4.tcp_tw_reuse 1
  set_sysctl net.ipv4.ip_local_port_range "1024 65000"
  set_sysctl net.core.somaxconn 65535
  set_sysctl net.ipv4.tcp_max_syn_backlog 65535
}

# start_nginx DIR PORT: the target, built not to be the bottleneck: two
# workers with a listening socket each (reuseport), each draining its whole
# accept queue per wake-up (multi_accept), a 65535 backlog, no access log, and
# a higher scheduling priority than the exporters and the load generator
# when run as root. Prints its pid.
start_nginx() {
  local work=$1 port=$2
  mkdir -p "$work/nginx/logs" "$work/www"
  echo "ok" > "$work/www/index.html"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 16384; multi_accept on; accept_mutex off; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server { listen 127.0.0.1:$port backlog=65535 reuseport; root $work/www; }
}
NGINX
  local nice=()
  [[ $(id -u) == 0 ]] && nice=(nice -n -10)
  "${nice[@]}" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" >/dev/null 2>&1 &
  echo $!
}

# Shared by the benchmark scripts (sourced, not run): loopback ports and a
# local nginx serving "ok" from a temp dir.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}

# start_nginx DIR PORT: one worker, no access log, a 4096 backlog; prints its pid.
start_nginx() {
  local work=$1 port=$2
  mkdir -p "$work/nginx/logs" "$work/www"
  echo "ok" > "$work/www/index.html"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server { listen 127.0.0.1:$port backlog=4096; root $work/www; }
}
NGINX
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" >/dev/null 2>&1 &
  echo $!
}

#!/usr/bin/env bash
# Installs ryze-events as a systemd service behind the system's nginx, or removes it.
#
#   deploy/install-systemd.sh            install or upgrade (build, install, enable, start or rolling-restart)
#   deploy/install-systemd.sh uninstall  stop, disable and remove (keeps /var/lib/ryze-events)
#
# Run as root from a clone. Settings go in /etc/default/ryze-events (WORKERS, THREADS, SERVE_ARGS,
# DELIVER_ARGS). Two units: ryze-events.service (the workers) and ryze-events-deliver.service
# (the webhook deliverer).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-install}" = uninstall ]; then
    systemctl disable --now ryze-events-deliver.service || true
    systemctl disable --now ryze-events.service || true
    rm -f /etc/systemd/system/ryze-events-deliver.service /etc/systemd/system/ryze-events.service /usr/local/bin/ryze-events /etc/nginx/sites-enabled/ryze-events \
        /etc/nginx/ryze-events-fastcgi-params /etc/nginx/ryze-events-errors.conf
    rm -rf /usr/local/lib/ryze-events
    systemctl daemon-reload
    echo "removed; data kept in /var/lib/ryze-events, user ryze-events kept"
    exit 0
fi

deploy/install-deps.sh
swift build -c release --product ryze-events
install -m 0755 "$(swift build -c release --show-bin-path)/ryze-events" /usr/local/bin/ryze-events.new
mv -f /usr/local/bin/ryze-events.new /usr/local/bin/ryze-events   # atomic: running workers keep the old inode
install -d -m 0755 /usr/local/lib/ryze-events
install -m 0755 deploy/rolling-restart.sh /usr/local/lib/ryze-events/rolling-restart.sh

id ryze-events >/dev/null 2>&1 || useradd --system --home-dir /var/lib/ryze-events --shell /usr/sbin/nologin ryze-events
# nginx's workers must reach the socket: they join the service's group.
id -nG www-data | grep -qw ryze-events || { usermod -aG ryze-events www-data; NGINX_RESTART=1; }

install -m 0644 deploy/ryze-events.service /etc/systemd/system/ryze-events.service
install -m 0644 deploy/ryze-events-deliver.service /etc/systemd/system/ryze-events-deliver.service
# The FastCGI parameters and nginx's error answers the site includes: replaced on every
# upgrade, like the binary.
install -m 0644 deploy/fastcgi_params.ryze-events /etc/nginx/ryze-events-fastcgi-params
install -m 0644 deploy/nginx-errors.conf /etc/nginx/ryze-events-errors.conf
[ -f /etc/default/ryze-events ] || printf 'WORKERS=4\nTHREADS=8\nSERVE_ARGS="--status-path /status"\n' >/etc/default/ryze-events
grep -q '^DELIVER_ARGS=' /etc/default/ryze-events || echo 'DELIVER_ARGS=' >>/etc/default/ryze-events
if [ ! -e /etc/nginx/sites-available/ryze-events ]; then
    install -m 0644 nginx.conf.example /etc/nginx/sites-available/ryze-events
    ln -sf /etc/nginx/sites-available/ryze-events /etc/nginx/sites-enabled/ryze-events
fi
# A site installed by an older version, or edited by the operator, is never rewritten; one without
# the error include answers nginx's own errors (400, 413, 502, ...) in HTML, against SPEC §1.
grep -q 'include ryze-events-errors.conf;' /etc/nginx/sites-available/ryze-events ||
    echo "warning: /etc/nginx/sites-available/ryze-events lacks 'include ryze-events-errors.conf;' (see nginx.conf.example): nginx's own errors will not be JSON" >&2
systemctl daemon-reload
if systemctl is-active --quiet ryze-events.service; then
    systemctl reload ryze-events.service      # upgrade: rolling restart onto the new binary
else
    systemctl enable --now ryze-events.service
fi
# The deliverer restarts onto the new binary at once: attempts in flight finish first (SIGTERM),
# and one cut short is simply made again (at least once).
if systemctl is-active --quiet ryze-events-deliver.service; then
    systemctl restart ryze-events-deliver.service
else
    systemctl enable --now ryze-events-deliver.service
fi
nginx -t
if [ "${NGINX_RESTART:-0}" = 1 ]; then systemctl restart nginx; else systemctl reload nginx; fi
echo "installed. first account: sudo -u ryze-events ryze-events account create --data-dir /var/lib/ryze-events --name NAME"

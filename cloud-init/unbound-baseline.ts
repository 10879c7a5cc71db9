import { MANAGED_HEADER } from "../model/layout";

/**
 * unbound's first configuration, written to LAYOUT.unboundConfig before the package is installed, so the
 * resolver never answers anything but the hub itself: it listens on loopback only until the agent replaces this
 * file with the full one (peer interface, private zone, blocklists). Debian's own unbound.conf.d files still
 * apply; the DNSSEC trust anchor comes from them (root-auto-trust-anchor-file.conf, seeded from dns-root-data).
 */
export function renderUnboundBaseline(): string {
  return `${MANAGED_HEADER}
# Baseline from the bootstrap: loopback only, no logging.
server:
    interface: 127.0.0.1
    interface: ::1
    access-control: 127.0.0.0/8 allow
    access-control: ::1/128 allow

    # Nothing about queries is kept: errors only, no query or reply log.
    verbosity: 0
    log-queries: no
    log-replies: no
    log-servfail: no
    log-local-actions: no

    hide-identity: yes
    hide-version: yes
    hide-trustanchor: yes
    qname-minimisation: yes
    aggressive-nsec: yes
    harden-glue: yes
    harden-dnssec-stripped: yes
    harden-below-nxdomain: yes
    harden-algo-downgrade: yes
    deny-any: yes
    minimal-responses: yes
    val-clean-additional: yes
    unwanted-reply-threshold: 10000000
    prefetch: yes

    # No public name may resolve to a private address (DNS rebinding).
    private-address: 10.0.0.0/8
    private-address: 172.16.0.0/12
    private-address: 192.168.0.0/16
    private-address: 169.254.0.0/16
    private-address: 100.64.0.0/10
    private-address: fd00::/8
    private-address: fe80::/10

# unbound-control over a root-only unix socket: nothing listens on a network port. Debian ships the same
# setting in remote-control.conf; stating it here keeps it true wherever that file is missing.
remote-control:
    control-enable: yes
    control-interface: /run/unbound.ctl
`;
}

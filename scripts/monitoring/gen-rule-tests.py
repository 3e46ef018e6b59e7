#!/usr/bin/env python3
"""Generate monitoring/{lifetime,events}.rules.test.yml, the promtool rule
tests, from the cases below. Expected annotations are rendered from
edgecert.rules.yml (they use only $labels), so editing an annotation needs
only a re-run: python3 scripts/monitoring/gen-rule-tests.py (needs PyYAML).
The generated files are committed; make test runs them with promtool."""
import os, re, sys
import yaml
MON = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'monitoring')
rules = yaml.safe_load(open(os.path.join(MON, 'edgecert.rules.yml')))
R = {r['alert']: r for g in rules['groups'] for r in g['rules']}
def ann(alert, labels):
    out = {}
    for k, v in R[alert]['annotations'].items():
        out[k] = re.sub(r'\{\{ \$labels\.(\w+) \}\}', lambda m: labels[m.group(1)], v)
    return out
def fire(alert, t, **labels):
    lab = dict(labels); lab['severity'] = R[alert]['labels']['severity']
    return {'eval_time': t, 'alertname': alert, 'exp_alerts': [{'exp_labels': lab, 'exp_annotations': ann(alert, labels)}]}
def quiet(alert, t):
    return {'eval_time': t, 'alertname': alert, 'exp_alerts': []}
H = 3600; D = 86400
STEP = 3  # hours between samples and between rule evaluations in the lifetime tests
def steps(vals_counts):
    return ' '.join(f'{v}x{n // STEP - 1}' for v, n in vals_counts)
def cert(name, segs, inst='h1'):
    # segs: list of (not_before, lifetime, renew_after, hours)
    L = f'name="{name}",instance="{inst}",job="edgecert"'
    nb = [(a, h) for a, life, ren, h in segs]
    na = [(a + life, h) for a, life, ren, h in segs]
    rn = [(a + ren, h) for a, life, ren, h in segs]
    n = sum(h for *_, h in segs) // STEP
    return [
        {'series': f'edgecert_certificate_not_before_timestamp_seconds{{{L}}}', 'values': steps(nb)},
        {'series': f'edgecert_certificate_not_after_timestamp_seconds{{{L}}}', 'values': steps(na)},
        {'series': f'edgecert_certificate_renewal_timestamp_seconds{{{L}}}', 'values': steps(rn)},
        {'series': f'edgecert_certificate_ready{{{L}}}', 'values': f'1x{n-1}'},
        {'series': f'edgecert_certificate_consecutive_failures{{{L}}}', 'values': f'0x{n-1}'},
    ]
cert_alerts = ['EdgecertCertificateExpiringSoon', 'EdgecertCertificateExpiryCritical', 'EdgecertRenewalOverdue', 'EdgecertRenewalFailing', 'EdgecertCertificateNotReady']

lifetime_tests = []
# Healthy 6-day certificate, renewed when half its lifetime is left (every 3 days), 12 days.
six = 6 * D
segs = [(i * 3 * D, six, 3 * D, 72) for i in range(4)]
lifetime_tests.append({'name': 'healthy 6-day certificate never alerts', 'interval': f'{STEP}h', 'input_series': cert('short', segs),
    'alert_rule_test': [quiet(a, f'{h}h') for h in range(6, 288, 6) for a in cert_alerts]})
# Healthy 45-day certificate renewed at a third left (day 30), 70 days.
ff = 45 * D
segs = [(0, ff, 30 * D, 720), (30 * D, ff, 30 * D, 720), (60 * D, ff, 30 * D, 48)]
lifetime_tests.append({'name': 'healthy 45-day certificate never alerts', 'interval': f'{STEP}h', 'input_series': cert('tlsserver', segs),
    'alert_rule_test': [quiet(a, f'{d}d') for d in range(1, 62) for a in cert_alerts]})
# A 6-day certificate that is never renewed (156 hours of samples).
segs = [(0, six, 3 * D, 156)]
lab = dict(name='stuck', instance='h1', job='edgecert')
lifetime_tests.append({'name': 'unrenewed 6-day certificate: overdue, then 20 %, then 10 %', 'interval': f'{STEP}h', 'input_series': cert('stuck', segs),
    'alert_rule_test': [
        quiet('EdgecertRenewalOverdue', '78h'),
        fire('EdgecertRenewalOverdue', '87h', **lab),
        quiet('EdgecertCertificateExpiringSoon', '96h'),
        quiet('EdgecertCertificateExpiringSoon', '114h'),
        fire('EdgecertCertificateExpiringSoon', '123h', **lab),
        quiet('EdgecertCertificateExpiryCritical', '129h'),
        fire('EdgecertCertificateExpiryCritical', '138h', **lab),
    ]})
# A 45-day certificate never renewed: 20 % left at day 36, 10 % at day 40.5.
segs = [(0, ff, 30 * D, 44 * 24)]
lab = dict(name='stuck45', instance='h1', job='edgecert')
lifetime_tests.append({'name': 'unrenewed 45-day certificate', 'interval': f'{STEP}h', 'input_series': cert('stuck45', segs),
    'alert_rule_test': [
        quiet('EdgecertRenewalOverdue', '30d'),
        fire('EdgecertRenewalOverdue', '31d', **lab),
        quiet('EdgecertCertificateExpiringSoon', '35d'),
        fire('EdgecertCertificateExpiringSoon', '37d', **lab),
        quiet('EdgecertCertificateExpiryCritical', '40d'),
        fire('EdgecertCertificateExpiryCritical', '41d', **lab),
    ]})

events = []
L = lambda name, inst='h1': f'name="{name}",instance="{inst}",job="edgecert"'
events.append({'name': 'repeated renewal failures', 'interval': '1m', 'input_series': [
    {'series': f'edgecert_certificate_consecutive_failures{{{L("a")}}}', 'values': '0 1 2 3x30'},
    {'series': f'edgecert_certificate_consecutive_failures{{{L("b")}}}', 'values': '0 1 2 0x30'},
    {'series': f'edgecert_certificate_consecutive_failures{{{L("c")}}}', 'values': '0 1 2x30'},
], 'alert_rule_test': [
    quiet('EdgecertRenewalFailing', '4m'),
    fire('EdgecertRenewalFailing', '10m', name='a', instance='h1', job='edgecert'),
    fire('EdgecertRenewalFailing', '30m', name='a', instance='h1', job='edgecert'),
]})
events.append({'name': 'not ready', 'interval': '1m', 'input_series': [
    {'series': f'edgecert_certificate_ready{{{L("a")}}}', 'values': '0x40'},
    {'series': f'edgecert_certificate_ready{{{L("b")}}}', 'values': '1x40'},
    {'series': f'edgecert_certificate_ready{{{L("c")}}}', 'values': '0x10 1x30'},
], 'alert_rule_test': [
    quiet('EdgecertCertificateNotReady', '10m'),
    fire('EdgecertCertificateNotReady', '20m', name='a', instance='h1', job='edgecert'),
    fire('EdgecertCertificateNotReady', '40m', name='a', instance='h1', job='edgecert'),
]})
I = lambda inst: f'instance="{inst}",job="edgecert"'
events.append({'name': 'ACME rate limited', 'interval': '1m', 'input_series': [
    {'series': f'edgecert_acme_orders_total{{result="rate_limited",{I("h1")}}}', 'values': '0x10 1x80'},
    {'series': f'edgecert_acme_orders_total{{result="valid",{I("h1")}}}', 'values': '0x90'},
    {'series': f'edgecert_acme_orders_total{{result="rate_limited",{I("h2")}}}', 'values': '0x90'},
    {'series': f'edgecert_acme_orders_total{{result="error",{I("h2")}}}', 'values': '0+1x90'},
    {'series': f'edgecert_acme_requests_total{{action="new_order",status="429",{I("h3")}}}', 'values': '0x30 1 2 3x58'},
    {'series': f'edgecert_acme_requests_total{{action="new_order",status="201",{I("h2")}}}', 'values': '0+1x90'},
], 'alert_rule_test': [
    quiet('EdgecertACMERateLimited', '5m'),
    {'eval_time': '40m', 'alertname': 'EdgecertACMERateLimited', 'exp_alerts': [
        {'exp_labels': {'severity': 'warning', 'instance': 'h1', 'job': 'edgecert'}, 'exp_annotations': ann('EdgecertACMERateLimited', {'instance': 'h1'})},
        {'exp_labels': {'severity': 'warning', 'instance': 'h3', 'job': 'edgecert'}, 'exp_annotations': ann('EdgecertACMERateLimited', {'instance': 'h3'})},
    ]},
]})
events.append({'name': 'Route 53 access denied', 'interval': '1m', 'input_series': [
    {'series': f'edgecert_route53_requests_total{{operation="ChangeResourceRecordSets",outcome="access_denied",{I("h1")}}}', 'values': '0x5 1x40'},
    {'series': f'edgecert_route53_requests_total{{operation="ChangeResourceRecordSets",outcome="access_denied",{I("h2")}}}', 'values': '0x45'},
    {'series': f'edgecert_route53_requests_total{{operation="ChangeResourceRecordSets",outcome="ok",{I("h2")}}}', 'values': '0+1x45'},
], 'alert_rule_test': [
    quiet('EdgecertRoute53AccessDenied', '4m'),
    fire('EdgecertRoute53AccessDenied', '10m', instance='h1', job='edgecert', operation='ChangeResourceRecordSets'),
    quiet('EdgecertRoute53AccessDenied', '40m'),
]})
events.append({'name': 'Route 53 throttling', 'interval': '1m', 'input_series': [
    {'series': f'edgecert_route53_requests_total{{operation="ChangeResourceRecordSets",outcome="throttled",{I("h1")}}}', 'values': '0+10x60'},
    {'series': f'edgecert_route53_requests_total{{operation="ChangeResourceRecordSets",outcome="ok",{I("h1")}}}', 'values': '0+20x60'},
    {'series': f'edgecert_route53_requests_total{{operation="ChangeResourceRecordSets",outcome="throttled",{I("h2")}}}', 'values': '0+1x60'},
    {'series': f'edgecert_route53_requests_total{{operation="ChangeResourceRecordSets",outcome="ok",{I("h2")}}}', 'values': '0+20x60'},
], 'alert_rule_test': [
    quiet('EdgecertRoute53Throttled', '10m'),
    fire('EdgecertRoute53Throttled', '40m', instance='h1', job='edgecert'),
]})
events.append({'name': 'daemon down', 'interval': '1m', 'input_series': [
    {'series': 'up{job="edgecert",instance="h1"}', 'values': '0x20'},
    {'series': 'up{job="edgecert",instance="h2"}', 'values': '1x20'},
    {'series': 'up{job="edgecert",instance="h3"}', 'values': '0 0 1x18'},
    {'series': f'edgecert_certificate_not_after_timestamp_seconds{{{L("a","h2")}}}', 'values': '9e9x20'},
], 'alert_rule_test': [
    quiet('EdgecertDown', '3m'),
    fire('EdgecertDown', '10m', instance='h1', job='edgecert'),
    quiet('EdgecertExpiryMetricAbsent', '20m'),
]})
events.append({'name': 'expiry series absent', 'interval': '1m', 'input_series': [
    {'series': 'up{job="edgecert",instance="h1"}', 'values': '1x30'},
    {'series': f'edgecert_certificate_not_after_timestamp_seconds{{name="a",instance="h1",job="other"}}', 'values': '9e9x30'},
], 'alert_rule_test': [
    quiet('EdgecertExpiryMetricAbsent', '10m'),
    {'eval_time': '20m', 'alertname': 'EdgecertExpiryMetricAbsent', 'exp_alerts': [
        {'exp_labels': {'severity': 'critical', 'job': 'edgecert'}, 'exp_annotations': ann('EdgecertExpiryMetricAbsent', {})}]},
]})

class Dumper(yaml.SafeDumper): pass
Dumper.ignore_aliases = lambda *a: True
def dump(path, evaluation_interval, tests, header):
    with open(path, 'w') as f:
        f.write(header)
        yaml.dump({'rule_files': ['edgecert.rules.yml'], 'evaluation_interval': evaluation_interval, 'tests': tests}, f, Dumper=Dumper, sort_keys=False, width=200, default_flow_style=None)
hdr = "# Generated by scripts/monitoring/gen-rule-tests.py: edit the cases there.\n# promtool test rules for edgecert.rules.yml (make test runs them through\n# monitoring/rules_test.go). %s\n"
dump(os.path.join(MON, 'lifetime.rules.test.yml'), f'{STEP}h', lifetime_tests, hdr % "Lifetime alerts, evaluated every 3 hours:\n# healthy 6- and 45-day certificates never alert; unrenewed ones do, in order.")
dump(os.path.join(MON, 'events.rules.test.yml'), '1m', events, hdr % "Event alerts, evaluated every minute:\n# for each alert a series that fires it and one that must not.")

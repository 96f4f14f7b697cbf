"""Compare what wbemcli printed with what vhdkitd's JSON door answered.

  cimcompare.py cm APIDOC CLASS METHOD WBEMCLI_OUT JSON_ANSWER [--any-job]
      wbemcli's `cm` line against the JSON answer of the same call, typed by
      the API reference (vhdkitd --api-doc).  --any-job: the two calls made
      different jobs, compare the Job's class and key name only.  Prints
      the wbemcli answer as JSON (ReturnValue and out-parameters).
  cimcompare.py gi WBEMCLI_NL_OUT JSON_INSTANCE
      wbemcli's `-nl gi` lines against a JSON instance (a job).

Exit 0 when they agree; 1 with the differences on stderr.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET

DATETIME = re.compile(r'^\d{14}\.\d{6}[+\-:]\d{3}$')
JOB_DATETIMES = ('TimeSubmitted', 'StartTime', 'ElapsedTime', 'TimeBeforeRemoval', 'TimeOfLastStateChange')


def api_params(apidoc, klass, method):
    """(name, direction, type, array, embedded class or None) of a method."""
    sect = meth = None
    out = []
    for line in open(apidoc):
        line = line.rstrip('\n')
        if line.startswith('## '):
            sect = line[3:].strip()
        elif line.startswith('### '):
            meth = line[4:].strip()
        elif sect == klass and meth == method and line.startswith('| ') and not line.startswith('| Parameter'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            if len(cells) < 3 or cells[0].startswith('---'):
                continue
            name, direction, t = cells[0], cells[1], cells[2]
            emb = None
            m = re.match(r'string \(embedded instance\)(\[\])?: (\S+)', t)
            if m:
                out.append((name, direction, 'string', bool(m.group(1)), m.group(2)))
                continue
            if t.startswith('REF'):
                out.append((name, direction, 'reference', False, None))
                continue
            arr = t.endswith('[]')
            out.append((name, direction, t[:-2] if arr else t, arr, emb))
    if not out:
        sys.exit('cimcompare: %s.%s is not in %s' % (klass, method, apidoc))
    return out


def unquote_wbem(s):
    return s.replace('\\"', '"')


def typed(t, text):
    if t.startswith('uint') or t.startswith('sint'):
        return int(text)
    if t == 'boolean':
        if text.lower() not in ('true', 'false'):
            raise ValueError('not a boolean: %r' % text)
        return text.lower() == 'true'
    return text


def instance_props(xml_text):
    root = ET.fromstring(xml_text)
    assert root.tag == 'INSTANCE', root.tag
    props = {}
    for p in root:
        name, t = p.get('NAME'), p.get('TYPE')
        if p.tag == 'PROPERTY':
            v = p.find('VALUE')
            props[name] = None if v is None else typed(t, v.text or '')
        elif p.tag == 'PROPERTY.ARRAY':
            va = p.find('VALUE.ARRAY')
            props[name] = None if va is None else [typed(t, v.text or '') for v in va.findall('VALUE')]
    return root.get('CLASSNAME'), props


def same_instance(where, js, xml_text, errs):
    cls, props = instance_props(unquote_wbem(xml_text))
    if cls != js.get('__CLASS'):
        errs.append('%s: class %s over CIM-XML, %s over JSON' % (where, cls, js.get('__CLASS')))
    for k, v in js.items():
        if k == '__CLASS':
            continue
        if k not in props:
            errs.append('%s: %s is missing over CIM-XML' % (where, k))
        elif props[k] != v:
            errs.append('%s: %s is %r over CIM-XML, %r over JSON' % (where, k, props[k], v))
    for k, v in props.items():
        if k not in js and v is not None:
            errs.append('%s: %s is %r over CIM-XML, absent over JSON' % (where, k, v))


def parse_cm(text, method):
    m = re.search(r' %s: (\d+)(.*)$' % re.escape(method), text, re.S)
    if not m:
        sys.exit('cimcompare: no "%s: <ReturnValue>" in wbemcli output: %r' % (method, text[:300]))
    res = {'ReturnValue': int(m.group(1))}
    rest = m.group(2).rstrip('\n')
    items = re.split(r', (?=[A-Za-z_][A-Za-z0-9_]* \([a-z0-9]*\): )', rest)
    if items[0] != '':
        sys.exit('cimcompare: unexpected text after the ReturnValue: %r' % items[0][:200])
    for it in items[1:]:
        mm = re.match(r'([A-Za-z_][A-Za-z0-9_]*) \(([a-z0-9]*)\): (.*)$', it, re.S)
        res[mm.group(1)] = (mm.group(2), mm.group(3))
    return res


def job_shape(path):
    return re.sub(r'InstanceID="[^"]*"', 'InstanceID="*"', path)


def cmd_cm(apidoc, klass, method, wfile, jfile, any_job):
    params = api_params(apidoc, klass, method)
    w = parse_cm(open(wfile).read(), method)
    j = json.load(open(jfile))
    errs = []
    shown = {'ReturnValue': w['ReturnValue']}
    if w['ReturnValue'] != j['ReturnValue']:
        errs.append('ReturnValue %d over CIM-XML, %d over JSON' % (w['ReturnValue'], j['ReturnValue']))
    outs = [p for p in params if p[1] == 'out']
    for name, _, t, arr, emb in outs:
        jv = j.get(name)
        if jv is None:
            if name in w:
                errs.append('%s is null over JSON but CIM-XML gave %r' % (name, w[name][1][:100]))
            continue
        if name not in w:
            errs.append('%s is missing over CIM-XML (JSON: %r)' % (name, jv))
            continue
        wt, wv = w[name]
        if wt != t:
            errs.append('%s has PARAMTYPE %s, not %s' % (name, wt, t))
        if t == 'reference':
            shown[name] = wv
            a, b = (job_shape(wv), job_shape(jv)) if any_job else (wv, jv)
            if a != b:
                errs.append('%s is %s over CIM-XML, %s over JSON' % (name, wv, jv))
        elif emb and not arr:
            same_instance(name, jv, wv, errs)
            shown[name] = instance_props(unquote_wbem(wv))[1]
        elif arr:
            vals = [] if wv == '' else [typed(t, x) for x in wv.split(',')]
            shown[name] = vals
            if emb:
                errs.append('%s: arrays of embedded instances are not compared' % name)
            elif vals != jv:
                errs.append('%s is %r over CIM-XML, %r over JSON' % (name, vals, jv))
        else:
            v = typed(t, unquote_wbem(wv))
            shown[name] = v
            if v != jv:
                errs.append('%s is %r over CIM-XML, %r over JSON' % (name, v, jv))
    jd = j.get('ErrorDescription') or ''
    wd = unquote_wbem(w['ErrorDescription'][1]) if 'ErrorDescription' in w else ''
    shown['ErrorDescription'] = wd
    if jd != wd:
        errs.append('ErrorDescription is %r over CIM-XML, %r over JSON' % (wd, jd))
    for k in w:
        if k not in ('ReturnValue', 'ErrorDescription') and k not in [p[0] for p in outs]:
            errs.append('CIM-XML answered %s, which is no out-parameter' % k)
    print(json.dumps(shown))
    return errs


def render(v):
    if v is None:
        return ''
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return ','.join(render(e) for e in v)
    if DATETIME.match(v):
        return v
    return '"%s"' % v.replace('"', '\\"')


def cmd_gi(wfile, jfile):
    props = {}
    for line in open(wfile):
        m = re.match(r'^-([A-Za-z_][A-Za-z0-9_]*)=(.*)$', line.rstrip('\n'))
        if m:
            props[m.group(1)] = m.group(2)
    j = json.load(open(jfile))
    errs = []
    for k, v in j.items():
        if k in ('__CLASS', 'OutParameters'):
            continue
        # An empty datetime over JSON is a Null one over CIM-XML.
        want = '' if v == '' and k in JOB_DATETIMES else render(v)
        if k not in props:
            errs.append('%s is missing over CIM-XML' % k)
        elif props[k] != want:
            errs.append('%s is %s over CIM-XML, %s over JSON' % (k, props[k], want))
    for k, v in props.items():
        if k not in j and v != '':
            errs.append('%s is %s over CIM-XML, absent over JSON' % (k, v))
    if not props:
        errs.append('wbemcli printed no property')
    return errs


def main():
    a = sys.argv[1:]
    if a and a[0] == 'cm' and len(a) >= 6:
        errs = cmd_cm(a[1], a[2], a[3], a[4], a[5], '--any-job' in a[6:])
    elif a and a[0] == 'gi' and len(a) == 3:
        errs = cmd_gi(a[1], a[2])
    else:
        sys.exit(__doc__)
    for e in errs:
        print('cimcompare: ' + e, file=sys.stderr)
    sys.exit(1 if errs else 0)


main()

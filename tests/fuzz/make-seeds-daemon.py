#!/usr/bin/env python3
"""make-seeds-daemon.py KIND OUTDIR APIDOC: seeds for fuzz-daemon-KIND
(cimxml or json) from the method table as `vhdkitd --api-doc` prints
it: one well-formed call of every method (and, for CIM-XML, the
intrinsic operations wbemcli sends), each with values of the right
types, so that the fuzzer starts past the parsers' first refusals."""
import os, sys

kind, out, apidoc = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
methods, klass, meth = [], None, None
for line in open(apidoc):
    if line.startswith('## '):
        klass = line[3:].strip()
    elif line.startswith('### '):
        meth = (klass, line[4:].strip(), [])
        methods.append(meth)
    elif meth and line.startswith('| ') and not line.startswith('| Parameter'):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) > 2 and cells[1] == 'in':
            meth[2].append((cells[0], cells[2]))

SD = ('<INSTANCE CLASSNAME="Msvm_VirtualHardDiskSettingData"><PROPERTY NAME="Path" TYPE="string">'
      '<VALUE>/srv/d.vhdx</VALUE></PROPERTY><PROPERTY NAME="Type" TYPE="uint16"><VALUE>3</VALUE>'
      '</PROPERTY><PROPERTY NAME="MaxInternalSize" TYPE="uint64"><VALUE>1048576</VALUE></PROPERTY></INSTANCE>')

def value(t):
    arr = '[]' in t
    base = t.replace('[]', '')
    if 'embedded' in base:
        v = SD
    elif base.startswith('uint'):
        v = '4096'
    elif base == 'boolean':
        v = 'true'
    elif base == 'datetime':
        v = '20261207120000.000000+000'
    else:
        v = '/srv/d.vhdx'
    return arr, v

def jvalue(t):
    arr, v = value(t)
    base = t.replace('[]', '')
    if 'embedded' in base:
        j = '{"__CLASS":"Msvm_VirtualHardDiskSettingData","Path":"/srv/d.vhdx","Type":3,"MaxInternalSize":1048576}'
    elif base.startswith('uint'):
        j = v
    elif base == 'boolean':
        j = 'true'
    else:
        j = '"%s"' % v
    return '[%s,%s]' % (j, j) if arr else j

def esc(s):
    return s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')

NS = '<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/><NAMESPACE NAME="virtualization"/><NAMESPACE NAME="v2"/></LOCALNAMESPACEPATH>'
HEAD = '<?xml version="1.0" encoding="utf-8" ?><CIM CIMVERSION="2.0" DTDVERSION="2.0"><MESSAGE ID="4711" PROTOCOLVERSION="1.0"><SIMPLEREQ>'
TAIL = '</SIMPLEREQ></MESSAGE></CIM>'
KEYS = lambda c: ''.join('<KEYBINDING NAME="%s"><KEYVALUE VALUETYPE="string">%s</KEYVALUE></KEYBINDING>' % kv for kv in (
    ('CreationClassName', c), ('Name', 'vhdsvc' if c == 'Msvm_ImageManagementService' else c),
    ('SystemCreationClassName', 'Msvm_ComputerSystem'), ('SystemName', 'localhost')))

n = 0
def put(name, text):
    global n
    n += 1
    with open(os.path.join(out, 'gen-%03d-%s' % (n, name)), 'w') as f:
        f.write(text)

for c, m, params in methods:
    if kind == 'json':
        body = '{%s}' % ','.join('"%s":%s' % (p, jvalue(t)) for p, t in params)
        put(m, '%s/%s\n%s' % (c, m, body))
        continue
    pv = ''
    for p, t in params:
        arr, v = value(t)
        if 'REF' in t:
            continue
        v = esc(v) if 'embedded' in t else v
        pv += ('<PARAMVALUE NAME="%s"><VALUE.ARRAY><VALUE>%s</VALUE><VALUE>%s</VALUE></VALUE.ARRAY></PARAMVALUE>' % (p, v, v)
               if arr else '<PARAMVALUE NAME="%s"><VALUE>%s</VALUE></PARAMVALUE>' % (p, v))
    if c == 'Msvm_ConcreteJob':
        inst = '<INSTANCENAME CLASSNAME="Msvm_ConcreteJob"><KEYBINDING NAME="InstanceID"><KEYVALUE VALUETYPE="string">j-1</KEYVALUE></KEYBINDING></INSTANCENAME>'
    else:
        inst = '<INSTANCENAME CLASSNAME="%s">%s</INSTANCENAME>' % (c, KEYS(c))
    put(m, '%s\n%s<METHODCALL NAME="%s"><LOCALINSTANCEPATH>%s%s</LOCALINSTANCEPATH>%s</METHODCALL>%s' % (
        m, HEAD, m, NS, inst, pv, TAIL))

if kind == 'cimxml':
    classes = sorted({c for c, _, _ in methods}) + ['Msvm_ConcreteJob', 'Msvm_VirtualHardDiskSettingData']
    for c in classes:
        cn = '<IPARAMVALUE NAME="ClassName"><CLASSNAME NAME="%s"/></IPARAMVALUE>' % c
        for op, extra in (('GetClass', '<IPARAMVALUE NAME="LocalOnly"><VALUE>FALSE</VALUE></IPARAMVALUE>'),
                          ('EnumerateInstances', '<IPARAMVALUE NAME="PropertyList"><VALUE.ARRAY><VALUE>Name</VALUE></VALUE.ARRAY></IPARAMVALUE>'),
                          ('EnumerateInstanceNames', '')):
            put(op, '%s\n%s<IMETHODCALL NAME="%s">%s%s%s</IMETHODCALL>%s' % (op, HEAD, op, NS, cn, extra, TAIL))
        if c.endswith('Service'):
            put('GetInstance', 'GetInstance\n%s<IMETHODCALL NAME="GetInstance">%s<IPARAMVALUE NAME="InstanceName"><INSTANCENAME CLASSNAME="%s">%s</INSTANCENAME></IPARAMVALUE></IMETHODCALL>%s' % (HEAD, NS, c, KEYS(c), TAIL))
    put('EnumerateClassNames', 'EnumerateClassNames\n%s<IMETHODCALL NAME="EnumerateClassNames">%s<IPARAMVALUE NAME="DeepInheritance"><VALUE>TRUE</VALUE></IPARAMVALUE></IMETHODCALL>%s' % (HEAD, NS, TAIL))
print('%d seeds in %s' % (n, out))

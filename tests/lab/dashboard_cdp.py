#!/usr/bin/python3
"""Drives ferry's dashboard in headless Chromium over the Chrome DevTools Protocol: opens the
page with a token, live-migrates one instance with post-copy ticked, and follows the migration
row until it ends.

  dashboard_cdp.py --url URL --token TOKEN --instance NAME --dest HOST --timeout SECONDS

Exit 0: the migration completed. Exit 1: it failed / errored / was cancelled, the page threw
a JavaScript exception, the form answered with an error, or the timeout (for the whole run)
passed. Exit 2: bad usage. One line per step on stdout, all starting with "cdp: ".
Needs only the standard library, Debian's python3-websocket and chromium.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import websocket
except ImportError:  # a python3 that is not Debian's (pyenv, venv): use Debian's module
    sys.path.append('/usr/lib/python3/dist-packages')
    import websocket


def say(msg):
    print('cdp: ' + msg, flush=True)


class Fail(Exception):
    """The test failed: message printed, exit 1."""


class PageError(Fail):
    """The page threw a JavaScript exception."""


class Chromium:
    """A headless Chromium of our own: own port, own profile dir; stop() ends it by PID."""

    def __init__(self, binary='chromium', log=None):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        self.port = s.getsockname()[1]
        s.close()
        self.dir = tempfile.mkdtemp(prefix='ferry-cdp-')
        self.log = open(log or os.path.join(self.dir, 'chromium.log'), 'wb')
        self.proc = subprocess.Popen(
            [binary, '--headless=new', '--no-sandbox', '--disable-gpu',
             '--remote-debugging-port=%d' % self.port, '--user-data-dir=' + os.path.join(self.dir, 'profile'),
             '--no-first-run', '--no-default-browser-check', '--disable-extensions',
             '--window-size=1400,1000', 'about:blank'],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, so its helpers go with it

    def http(self, path):
        with urllib.request.urlopen('http://127.0.0.1:%d%s' % (self.port, path), timeout=5) as r:
            return json.loads(r.read().decode())

    def page_ws(self, deadline):
        """The websocket URL of the first page target, once the browser answers."""
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Fail('chromium exited with status %s (log: %s)' % (self.proc.returncode, self.tail()))
            try:
                for t in self.http('/json'):
                    if t.get('type') == 'page' and t.get('webSocketDebuggerUrl'):
                        return t['webSocketDebuggerUrl']
            except OSError as e:
                last = e
            time.sleep(0.2)
        raise Fail('chromium did not offer a page target on port %d in time (%s)' % (self.port, last))

    def tail(self):
        try:
            with open(self.log.name, 'rb') as f:
                return f.read()[-600:].decode(errors='replace').strip().replace('\n', ' | ')
        except OSError:
            return ''

    def stop(self):
        p = self.proc
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        try:  # helpers (zygote, renderers) left in the group we created for it
            os.killpg(p.pid, signal.SIGKILL)
            end = time.time() + 5
            while time.time() < end:  # until they are gone (reaped)
                os.killpg(p.pid, 0)
                time.sleep(0.05)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class CDP:
    """One page session. Events are read while waiting for answers; a Runtime.exceptionThrown
    is remembered and raised as PageError at the next call."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.n = 0
        self.events = []
        self.exceptions = []
        self.raised = 0

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass

    def _event(self, m):
        method = m.get('method')
        p = m.get('params', {})
        if method == 'Runtime.exceptionThrown':
            d = p.get('exceptionDetails', {})
            ex = d.get('exception', {})
            text = ex.get('description') or d.get('text') or json.dumps(d)
            where = '%s:%s:%s' % (d.get('url', ''), d.get('lineNumber', '?'), d.get('columnNumber', '?'))
            say('JavaScript exception in the page: %s (at %s)' % (text.strip().replace('\n', ' | '), where))
            self.exceptions.append(text)
        elif method == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'warning'):
            args = ' '.join(str(a.get('value', a.get('description', ''))) for a in p.get('args', []))
            say('console.%s: %s' % (p['type'], args))
        self.events.append(m)
        del self.events[:-200]

    def check(self):
        if len(self.exceptions) > self.raised:
            self.raised = len(self.exceptions)
            raise PageError('the page threw: %s' % self.exceptions[-1].strip().splitlines()[0])

    def call(self, method, **params):
        self.n += 1
        mid = self.n
        self.ws.send(json.dumps({'id': mid, 'method': method, 'params': params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get('id') == mid:
                if 'error' in m:
                    raise Fail('%s: %s' % (method, m['error'].get('message')))
                self.check()
                return m.get('result', {})
            if 'method' in m:
                self._event(m)

    def wait_event(self, method, deadline):
        for m in self.events:
            if m.get('method') == method:
                self.events.remove(m)
                return m
        while time.time() < deadline:
            self.ws.settimeout(max(0.1, min(1.0, deadline - time.time())))
            try:
                m = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            finally:
                self.ws.settimeout(30)
            if m.get('method') == method:
                return m
            if 'method' in m:
                self._event(m)
            self.check()
        raise Fail('timed out waiting for %s' % method)

    def js(self, expr):
        """Evaluates expr in the page; its value (JSON-able). A throw in expr is a driver error."""
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r:
            d = r['exceptionDetails']
            raise Fail('evaluating %s: %s' % (expr[:80], d.get('exception', {}).get('description') or d.get('text')))
        return r.get('result', {}).get('value')

    def wait_js(self, expr, deadline, what, every=0.2):
        """Polls expr until it is truthy; returns its value."""
        while True:
            v = self.js(expr)
            if v:
                return v
            if time.time() >= deadline:
                raise Fail('timed out waiting for %s' % what)
            time.sleep(every)


def open_page(cdp, url, deadline):
    cdp.call('Page.enable')
    cdp.call('Runtime.enable')
    r = cdp.call('Page.navigate', url=url)
    if r.get('errorText'):
        raise Fail('could not load %s: %s' % (url, r['errorText']))
    cdp.wait_event('Page.loadEventFired', deadline)


def run(a, cdp, deadline, seen):
    q = json.dumps  # JS string literal for a Python string
    url = a.url.rstrip('/') + '/?token=' + urllib.request.quote(a.token, safe='')
    open_page(cdp, url, deadline)
    say('page loaded')

    row = 'document.querySelector(%s)' % q('tr[data-instance=%s]' % q(a.instance))
    try:
        cdp.wait_js('!!' + row, deadline, 'the row of instance %s' % a.instance)
    except PageError:
        raise
    except Fail as e:  # say what the page says (401, unreachable, ...)
        raise Fail('%s; the page says: %s' % (e, cdp.js('document.querySelector("#status").textContent')))
    say('instance %s listed' % a.instance)

    cdp.js('%s.querySelector("button.migrate").click()' % row)
    cdp.wait_js('!!document.querySelector("#mig-dest") && document.querySelector("#mig-dest").offsetParent !== null',
                deadline, 'the live-migrate form')
    opts = cdp.js('Array.from(document.querySelectorAll("#mig-dest option")).map(o => o.value)')
    if a.dest not in opts:
        raise Fail('destination %s is not offered; the form offers %s' % (a.dest, opts))
    cdp.js('''(() => { const s = document.querySelector("#mig-dest"); s.value = %s;
                       s.dispatchEvent(new Event("change", {bubbles: true})); })()''' % q(a.dest))
    cdp.js('''(() => { const c = document.querySelector("#mig-postcopy"); if (!c.checked) c.click(); })()''')
    state = cdp.js('''({dest: document.querySelector("#mig-dest").value,
                        postcopy: document.querySelector("#mig-postcopy").checked,
                        block: document.querySelector("#mig-block").checked,
                        overcommit: document.querySelector("#mig-overcommit").checked})''')
    if state['dest'] != a.dest or not state['postcopy']:
        raise Fail('the form did not take the input: %s' % state)
    say('form: destination %s, post-copy ticked' % a.dest)
    cdp.js('document.querySelector("#mig-submit").click()')

    res = cdp.wait_js('''(() => { const r = document.querySelector("#mig-result");
                                  const t = r.textContent.trim();
                                  return (/Migration \\d+ accepted/.test(t) || r.dataset.state === "error") ? t : ""; })()''',
                      deadline, 'the answer in #mig-result')
    m = re.search(r'Migration (\d+) accepted', res)
    if not m:
        raise Fail('the migration was not accepted: %s' % res)
    mid = m.group(1)
    say('migration %s accepted (%s)' % (mid, res))

    mrow = 'document.querySelector(%s)' % q('tr[data-migration="%s"]' % mid)
    last = None
    while True:
        r = cdp.js('''(() => { const r = %s; return r ? {status: r.dataset.status, postcopy: r.dataset.postcopy,
                        text: r.innerText.replace(/\\s+/g, " ").trim()} : null; })()''' % mrow)
        if r:
            if r['postcopy'] == 'true':
                seen['postcopy'] = True
            key = (r['status'], r['postcopy'])
            if key != last:
                last = key
                say('migration %s %s%s' % (mid, r['status'], ' (post-copy)' if r['postcopy'] == 'true' else ''))
            if r['status'] == 'completed':
                return 0
            if r['status'] in ('failed', 'error', 'cancelled'):
                raise Fail('migration %s ended %s: %s' % (mid, r['status'], r['text']))
        if time.time() >= deadline:
            raise Fail('timed out after %gs: migration %s is %s' % (a.timeout, mid, r['status'] if r else 'not listed'))
        time.sleep(0.25)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--url', required=True, help="the scheduler's base URL, e.g. http://127.0.0.1:8774")
    ap.add_argument('--token', required=True, help='an X-Auth-Token of [http] tokens')
    ap.add_argument('--instance', required=True, help="the instance's name (its row is tr[data-instance=NAME])")
    ap.add_argument('--dest', required=True, help='the destination host')
    ap.add_argument('--timeout', type=float, default=120, help='seconds for the whole run (default 120)')
    ap.add_argument('--chromium', default=os.environ.get('FERRY_CHROMIUM', 'chromium'), help='browser binary')
    ap.add_argument('--screenshot', metavar='PNG', help='save a screenshot of the page at the end')
    ap.add_argument('--dump', action='store_true', help="print the page's text at the end")
    a = ap.parse_args(argv)

    def on_signal(signo, _frame):
        raise SystemExit(128 + signo)
    signal.signal(signal.SIGTERM, on_signal)

    deadline = time.time() + a.timeout
    seen = {'postcopy': False}
    browser = cdp = None
    rc = 1
    try:
        browser = Chromium(a.chromium)
        cdp = CDP(browser.page_ws(min(deadline, time.time() + 30)))
        rc = run(a, cdp, deadline, seen)
        time.sleep(0.3)  # an exception thrown by the last render still counts
        cdp.js('1')
    except Fail as e:
        say('FAIL: %s' % e)
        rc = 1
    except (OSError, websocket.WebSocketException) as e:
        say('FAIL: %s: %s' % (type(e).__name__, e))
        rc = 1
    finally:
        if cdp:
            try:
                if a.dump:
                    print(cdp.js('document.body.innerText'))
                if a.screenshot:
                    import base64
                    png = cdp.call('Page.captureScreenshot', format='png', captureBeyondViewport=True)['data']
                    with open(a.screenshot, 'wb') as f:
                        f.write(base64.b64decode(png))
                    say('screenshot in %s' % a.screenshot)
            except Exception as e:  # a page that threw still gets its dump
                say('could not dump the page: %s' % e)
            cdp.close()
        if browser:
            browser.stop()
        say('post-copy seen: %s' % ('yes' if seen['postcopy'] else 'no'))
    return rc


if __name__ == '__main__':
    sys.exit(main())

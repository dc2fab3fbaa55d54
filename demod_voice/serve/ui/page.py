"""What the web page runs in the browser: the streaming player, the server watch, the browser-voice fallback.

Plain script and style sheet, given to Gradio as the page's ``head`` and ``css``. Nothing here
is fetched from another site: the theme uses the system's fonts, so a page on a machine without
internet draws at once instead of waiting for a font server.
"""

from __future__ import annotations

HEAD = """
<link rel="icon" href="data:,">
<script>
(() => {
  // The streaming player: an <audio class="dv-player" data-src="audio/TOKEN"> is fed through Media Source
  // Extensions as the bytes arrive (an <audio src> of a growing file starts only after ~5 s of it).
  function say(audio, text) {
    const box = audio.closest('.dv-player-box');
    const where = box && box.querySelector('.dv-player-error');
    if (where) where.textContent = text;
  }
  async function feed(audio, url, mime, media) {
    const buffer = media.addSourceBuffer(mime);
    const queue = [];
    let ended = false;
    const pump = () => {
      if (buffer.updating || media.readyState !== 'open') return;
      if (queue.length) buffer.appendBuffer(queue.shift());
      else if (ended) media.endOfStream();
    };
    buffer.addEventListener('updateend', pump);
    let response;
    try {
      response = await fetch(url, {cache: 'no-store'});
    } catch (err) {
      say(audio, 'The server is not answering: the audio could not be fetched.');
      return;
    }
    if (!response.ok) {
      let message = 'The audio could not be made.';
      try {  // the server's errors are {"error": {"message"}} (a bare {"detail"} from elsewhere)
        const body = await response.json();
        message = (body.error && body.error.message) || body.detail || message;
      } catch (err) { /* not JSON */ }
      say(audio, message);
      return;
    }
    const reader = response.body.getReader();
    let started = false;
    try {
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        queue.push(value);
        pump();
        if (!started) { started = true; audio.play().catch(() => {}); }
      }
    } catch (err) {
      say(audio, 'The connection to the server broke off before the audio was complete.');
    }
    ended = true;
    pump();
  }
  function attach(audio) {
    if (audio.dataset.attached) return;
    audio.dataset.attached = '1';
    const url = new URL(audio.dataset.src, document.baseURI).href;
    const mime = audio.dataset.mime || 'audio/mpeg';
    if (!(window.MediaSource && MediaSource.isTypeSupported(mime))) {
      audio.src = url;
      audio.play().catch(() => {});
      return;
    }
    const media = new MediaSource();
    audio.src = URL.createObjectURL(media);
    media.addEventListener('sourceopen', () => feed(audio, url, mime, media), {once: true});
  }
  // Gradio's own refusal of a file over the upload limit said "File(s) exceed the maximum allowed size of 23.8 Mb" (its
  // MiB, for a limit set as 25 MB) and nothing of what to do: it is said again in the page's words.
  const TOO_BIG = /^File\\(s\\) exceed the maximum allowed size of [\\d.]+ \\w+: (.+)$/;
  function reword(toast) {
    const found = TOO_BIG.exec(toast.textContent.trim());
    if (found) {
      toast.textContent = `Not uploaded: ${found[1]} is larger than the MAX_UPLOAD_MB MB a file this server takes. `
        + 'Send a smaller file, or a shorter recording (6-30 s is enough for a voice).';
    }
  }
  // Gradio names every upload area "Click to upload or drop files" and every slider's reset "Reset to default value": a
  // screen reader heard the Batch tab's three upload areas alike, and not which file each one takes. Each is named after
  // its field's label.
  const GENERIC = {'button.upload-container': '[data-testid="block-label"]', 'button.reset-button': '[data-testid="block-info"]'};
  function nameAfterLabel(selector, labelSelector) {
    document.querySelectorAll(selector).forEach((button) => {
      const label = button.closest('.block') && button.closest('.block').querySelector(labelSelector);
      const said = button.getAttribute('aria-label') || '';
      if (!label || button.dataset.dvNamed === said) return;
      button.setAttribute('aria-label', `${label.textContent.trim()}: ${said.charAt(0).toLowerCase()}${said.slice(1)}`);
      button.dataset.dvNamed = button.getAttribute('aria-label');
    });
  }
  // Gradio draws a tab's contents when it is opened: new players and fallbacks are found as they appear.
  const scan = () => {
    document.querySelectorAll('[data-testid="toast-text"]').forEach(reword);
    Object.entries(GENERIC).forEach(([selector, label]) => nameAfterLabel(selector, label));
    document.querySelectorAll('audio.dv-player[data-src]').forEach(attach);
    const down = document.body && document.body.dataset.dvServer === 'down';
    document.querySelectorAll('.dv-fallback').forEach((e) => { e.style.display = down ? 'block' : 'none'; });
  };
  new MutationObserver(scan).observe(document.documentElement, {childList: true, subtree: true});

  // Uploads carry the page's key: a server with keys refuses anonymous uploads, as its API does.
  const plainFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    const url = new URL((input && input.url) || String(input), document.baseURI);
    const key = ((document.querySelector('#dv-key input') || {}).value || '').trim();
    if (key && url.pathname.endsWith('/gradio_api/upload')) {
      init = Object.assign({}, init || {});
      const headers = new Headers(init.headers || (input && input.headers) || {});
      headers.set('Authorization', 'Bearer ' + key);
      init.headers = headers;
    }
    return plainFetch(input, init);
  };

  // The server watch: /healthz every 3 s; two misses in a row and the page says the server is gone.
  let misses = 0;
  function setServer(state) {
    if (document.body.dataset.dvServer === state) return;
    document.body.dataset.dvServer = state;
    let banner = document.getElementById('dv-offline');
    scan();
    if (state === 'down' && !banner) {
      banner = document.createElement('div');
      banner.id = 'dv-offline';
      banner.setAttribute('role', 'alert');
      banner.textContent = 'The demod-voice server is not answering: it was stopped, or the network between you is down. '
        + 'Nothing on this page can reach it until it is back. Meanwhile the Speak tab can read your text '
        + "with this browser's own voice.";
      document.body.prepend(banner);
    } else if (state === 'up' && banner) {
      banner.remove();
    }
  }
  async function beat() {
    let ok = false;
    try {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 2500);
      ok = (await fetch(new URL('../healthz', document.baseURI), {cache: 'no-store', signal: controller.signal})).ok;
      clearTimeout(timer);
    } catch (err) { ok = false; }
    if (ok) { misses = 0; setServer('up'); } else if (++misses >= 2) { setServer('down'); }
  }
  setInterval(beat, 3000);

  // The fallback: the browser's own speech synthesis (Web Speech API) reads the Speak tab's text.
  document.addEventListener('click', (event) => {
    if (!event.target.closest('#dv-browser-voice')) return;
    const note = document.getElementById('dv-browser-voice-note');
    const text = (document.querySelector('#dv-text textarea') || {}).value || '';
    if (!('speechSynthesis' in window)) {
      if (note) note.textContent = 'This browser has no speech synthesis either.';
      return;
    }
    if (!text.trim()) {
      if (note) note.textContent = 'Type the text to speak first.';
      return;
    }
    window.speechSynthesis.cancel();
    window.speechSynthesis.speak(new SpeechSynthesisUtterance(text));
    if (note) note.textContent = "Speaking with this browser's voice (not a demod-voice voice).";
  });
})();
</script>
"""

CSS = """
#dv-offline { position: sticky; top: 0; z-index: 1000; padding: 0.8em 1.2em; background: #b3261e; color: #fff;
  font-weight: 600; }
.dv-fallback { display: none; }
.dv-player-box { display: flex; flex-wrap: wrap; align-items: center; gap: 0.8em; min-height: 3em; }
.dv-player-box audio { flex: 1 1 18em; }
.dv-player-error { color: #b3261e; font-weight: 600; }
.dv-error { color: #b3261e; }
"""


def head(max_upload_mb: float) -> str:
    """:data:`HEAD` for a server that takes uploads of up to ``max_upload_mb`` (``serve.limits.max_upload_mb``)."""
    return HEAD.replace("MAX_UPLOAD_MB", f"{max_upload_mb:g}")


def theme() -> object:
    """Gradio's default look with the system's fonts (its default fetches fonts from the internet)."""
    import gradio as gr

    return gr.themes.Default(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def player_html(token: str, download_name: str, download_format: str, mime: str = "audio/mpeg") -> str:
    """The player for one result: streamed audio (filled in by the page's script) and its download link."""
    from html import escape

    return (f'<div class="dv-player-box"><audio class="dv-player" controls data-src="audio/{escape(token)}" '
            f'data-mime="{escape(mime)}"></audio>'
            f'<a class="dv-download" href="audio/{escape(token)}/download" download="{escape(download_name)}">'
            f'Download ({escape(download_format.upper())})</a><span class="dv-player-error"></span></div>')


EMPTY_PLAYER = '<div class="dv-player-box"><span>The audio will play here.</span></div>'

FALLBACK = """<div class="dv-fallback"><button id="dv-browser-voice" type="button" class="lg secondary">Speak with this
browser's voice</button> <span id="dv-browser-voice-note">The server is not answering; your browser can read the text
with its own voice meanwhile.</span></div>"""

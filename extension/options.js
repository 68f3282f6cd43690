// Options page: server URL, token, languages, ducking, room for the microphone.
import { LANGUAGES } from './lib/protocol.js';
import { loadSettings, saveSettings } from './settings.js';

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

for (const id of ['source', 'target', 'micSource']) {
  if (id !== 'target') $(id).add(new Option('Detect', 'auto'));
  for (const [code, name] of LANGUAGES) $(id).add(new Option(`${name} (${code})`, code));
}
$('origin').textContent = location.origin;
const s = await loadSettings();
for (const key of ['server', 'token', 'source', 'target', 'room', 'micSource', 'name']) $(key).value = /** @type {any} */ (s)[key];
$('speak').checked = s.speak;
$('duck').checked = s.duck;

$('form').addEventListener('submit', async (/** @type {Event} */ event) => {
  event.preventDefault();
  await saveSettings({
    server: $('server').value.trim(), token: $('token').value.trim(), source: $('source').value,
    target: $('target').value, room: $('room').value.trim(), micSource: $('micSource').value,
    name: $('name').value.trim(),
    speak: $('speak').checked, duck: $('duck').checked,
  });
  $('saved').textContent = 'Saved.';
});

// The offscreen document cannot show a permission prompt: ask here once.
$('allow-mic').addEventListener('click', async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    stream.getTracks().forEach((t) => t.stop());
    $('saved').textContent = 'Microphone allowed.';
  } catch {
    $('saved').textContent = 'Microphone access was denied.';
  }
});

// Popup: invoking the extension here is the user gesture tabCapture needs.
import { loadSettings } from './settings.js';

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
const settings = await loadSettings();
$('langs').textContent = `${settings.source} → ${settings.target}`;
if (!settings.token) $('msg').textContent = 'Set the server and token in the settings first.';

/** @param {Record<string, unknown>} message */
async function send(message) {
  $('msg').textContent = '';
  const reply = await chrome.runtime.sendMessage({ to: 'background', tabId: tab.id, ...message });
  const result = reply?.result;
  if (!reply?.ok) $('msg').textContent = reply?.error || 'failed';
  else if (result && result.ok === false) $('msg').textContent = result.error?.message || result.error || 'failed';
  else window.close();
}

const micStatus = await chrome.runtime.sendMessage({ to: 'background', cmd: 'mic-status' });
const micActive = Boolean(micStatus?.result?.active);
if (micActive) $('mic').textContent = `Stop translating my microphone (room ${micStatus.result.status?.room ?? ''})`;

$('tab').onclick = () => send({ cmd: 'start', mode: 'tab' });
$('element').onclick = () => send({ cmd: 'start', mode: 'element' });
$('mic').onclick = () => send({ cmd: micActive ? 'mic-stop' : 'mic' });
$('stop').onclick = () => send({ cmd: 'stop' });

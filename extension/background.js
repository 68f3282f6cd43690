// Service worker: starts and stops translation of a tab. The offscreen document owns
// the audio and the WebSocket session (service workers have neither); the content
// script shows the captions overlay on the meeting page.
//
// Capture modes:
//  'tab'      chrome.tabCapture stream of the whole tab (needs the user to invoke the
//             extension on that tab: the popup's button does).
//  'element'  fallback for any tab: the content script captures the page's own <audio>
//             and <video> elements with captureStream() and streams 20 ms frames here.
//  'mic'      the user's microphone, published as a speaker in a Dragoman room so the
//             others in the room hear it translated.
import { loadSettings } from './settings.js';

const OFFSCREEN = 'offscreen.html';

async function hasOffscreen() {
  const contexts = await chrome.runtime.getContexts({ contextTypes: ['OFFSCREEN_DOCUMENT'] });
  return contexts.length > 0;
}

async function ensureOffscreen() {
  if (await hasOffscreen()) return;
  await chrome.offscreen.createDocument({
    url: OFFSCREEN,
    reasons: ['USER_MEDIA', 'AUDIO_PLAYBACK'],
    justification: 'Capture the meeting audio, stream it to the Dragoman server and play the translation.',
  });
}

/** @param {number} tabId */
async function injectOverlay(tabId) {
  try {
    await chrome.tabs.sendMessage(tabId, { to: 'content', cmd: 'ping' });
  } catch {
    await chrome.scripting.executeScript({ target: { tabId }, files: ['content.js'] });
  }
}

/**
 * Start translating a tab.
 * @param {number} tabId
 * @param {{mode?: 'tab'|'element'}} [o]
 */
async function startTranslation(tabId, o = {}) {
  const settings = await loadSettings();
  const mode = o.mode || 'tab';
  await ensureOffscreen();
  await injectOverlay(tabId);
  let streamId = null;
  if (mode === 'tab') {
    streamId = await chrome.tabCapture.getMediaStreamId({ targetTabId: tabId });
  }
  const reply = await chrome.runtime.sendMessage({ to: 'offscreen', cmd: 'start', tabId, mode, streamId, settings });
  await chrome.tabs.sendMessage(tabId, { to: 'content', cmd: 'attach', mode, duck: settings.duck });
  return reply;
}

/** @param {number} tabId */
async function stopTranslation(tabId) {
  await chrome.runtime.sendMessage({ to: 'offscreen', cmd: 'stop', tabId }).catch(() => {});
  await chrome.tabs.sendMessage(tabId, { to: 'content', cmd: 'detach' }).catch(() => {});
}

async function startMicrophone() {
  const settings = await loadSettings();
  await ensureOffscreen();
  return chrome.runtime.sendMessage({ to: 'offscreen', cmd: 'mic', settings });
}

async function stopMicrophone() {
  if (!(await hasOffscreen())) return { ok: true };
  return chrome.runtime.sendMessage({ to: 'offscreen', cmd: 'mic-stop' });
}

/** @returns {Promise<{ok: boolean, active: boolean, status?: any}>} */
async function microphoneStatus() {
  if (!(await hasOffscreen())) return { ok: true, active: false };
  return chrome.runtime.sendMessage({ to: 'offscreen', cmd: 'mic-status' });
}

chrome.runtime.onMessage.addListener((message, _sender, sendResponse) => {
  if (message?.to !== 'background') return false;
  const run = async () => {
    if (message.cmd === 'start') return startTranslation(message.tabId, { mode: message.mode });
    if (message.cmd === 'stop') return stopTranslation(message.tabId);
    if (message.cmd === 'mic') return startMicrophone();
    if (message.cmd === 'mic-stop') return stopMicrophone();
    if (message.cmd === 'mic-status') return microphoneStatus();
    return null;
  };
  run().then((r) => sendResponse({ ok: true, result: r ?? null }),
    (e) => sendResponse({ ok: false, error: String(e?.message || e) }));
  return true;
});

// For automation (tests) and the console: start/stop without the popup.
Object.assign(globalThis, { startTranslation, stopTranslation, startMicrophone, stopMicrophone, microphoneStatus });

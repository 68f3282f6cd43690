// Extension settings in chrome.storage.local (the token never leaves the extension
// except inside session.start to the configured server; it is never logged).

/**
 * @typedef {object} Settings
 * @property {string} server     ws(s)://host:port/v1
 * @property {string} token
 * @property {string} source     language spoken in the meeting ("auto" to detect)
 * @property {string} target     language to hear it in
 * @property {boolean} duck      lower the meeting's own audio while the translation speaks
 * @property {boolean} speak     play the translated voice (off: captions only)
 * @property {string} room       Dragoman room for "translate my microphone for the others"
 * @property {string} micSource  the language the user speaks
 * @property {string} name       how the others in the room see the user's speech labelled
 */

/** @type {Settings} */
export const DEFAULTS = {
  server: 'ws://127.0.0.1:8765/v1', token: '', source: 'auto', target: 'en', duck: true,
  speak: true, room: '', micSource: 'auto', name: '',
};

/** @returns {Promise<Settings>} */
export async function loadSettings() {
  const stored = await chrome.storage.local.get('settings');
  return { ...DEFAULTS, ...(stored.settings || {}) };
}

/** @param {Partial<Settings>} settings */
export async function saveSettings(settings) {
  const current = await loadSettings();
  await chrome.storage.local.set({ settings: { ...current, ...settings } });
}

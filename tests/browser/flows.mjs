// Drives the gridwalk app in headless Chromium through the liveview harness:
// unlock with the PIN, record a visit, log a hazard with a photo and location, run a patrol,
// register a dispute with a mediation session. Usage: node flows.mjs <url> <photo.jpg>
// Exits non-zero on the first failed step; the Rust test then checks the device store.
import { chromium } from 'playwright-core';

const [url, photo] = process.argv.slice(2);
if (!url || !photo) { console.error('usage: node flows.mjs <url> <photo>'); process.exit(2); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 400, height: 820 } });
page.setDefaultTimeout(15000);
const step = (name) => console.log(`step: ${name}`);
let failed = false;
// Every message on screen is Chinese under zh: names no field path, no English reason.
const chinese = async (where) => {
  const shown = await page.evaluate(() => Array.from(document.querySelectorAll(
      '.field-error, .note.error, [role=alert]'))
    .filter((e) => e.offsetParent !== null)
    .map((e) => e.textContent.trim())
    .filter((t) => t));
  if (!shown.length) throw new Error(`${where}: no message shown`);
  const bad = shown.filter((t) => !/[\u4e00-\u9fff]/.test(t)
    || /\b(is required|must|is neither|at least|is not|entries|parties\[)/.test(t));
  if (bad.length) throw new Error(`${where}: messages not in Chinese: ${JSON.stringify(bad)}`);
  return shown;
};
try {
  step('unlock with the PIN');
  await page.goto(url);
  await page.fill('#pin', '000000');
  await page.click('#unlock');
  await page.waitForSelector('text=PIN 不正确');
  await page.fill('#pin', '123456');
  await page.click('#unlock');
  await page.waitForSelector('text=今日工作');

  step('record a visit');
  await page.click('.due-list a.card >> nth=0');
  await page.waitForSelector('#visit-notes');
  const address = await page.textContent('h1');
  await page.selectOption('#visit-purpose', 'CARE');
  await page.fill('#visit-notes', '老人身体尚可，已送米面油');
  // A double tap records one visit, not a second empty one.
  await page.dblclick('#visit-save');
  await page.waitForSelector('#visit-saved');
  await page.waitForSelector('li.visit >> text=老人身体尚可');
  await page.waitForTimeout(300);
  const visitsBefore = await page.locator('li.visit').count();
  await page.click('#visit-save', { force: true }).catch(() => {});
  await page.waitForTimeout(300);
  if (await page.locator('li.visit').count() !== visitsBefore) throw new Error('a tap after saving recorded another visit');
  console.log(`visited ${address}`);

  step('log a hazard with a photo and location');
  await page.click('#tab-report');
  await page.waitForSelector('#hz-description');
  await page.selectOption('#hz-category', 'CORRIDOR_EBIKE');
  await page.selectOption('#hz-severity', 'HIGH');
  // A 重大 hazard is at least 紧急: 普通 cannot be taken; the worker may raise it to 重大.
  await page.waitForFunction(() => document.querySelector('#hz-urgency').value === 'URGENT');
  if (!(await page.locator('#hz-urgency option[value=NORMAL]').isDisabled())) throw new Error('a 重大 hazard could be filed as 普通');
  await page.selectOption('#hz-urgency', 'MAJOR');
  await page.fill('#hz-description', '三单元楼道内有电动车充电，飞线');
  await page.fill('#hz-place', '3号楼3单元');
  // The phone's own picker: the file input (the liveview harness reads it in the page).
  await page.setInputFiles('#photo-file', photo);
  await page.waitForSelector('.photo-list li');
  await page.waitForSelector('#loc-grid >> text=所在网格');
  await page.dblclick('#hz-submit');
  await page.waitForSelector('#record-summary >> text=三单元楼道内有电动车充电');
  await page.waitForSelector('img.thumb');
  await page.waitForSelector('#record-status >> text=重大');

  step('a hazard with no description shows the message beside the field');
  await page.click('#tab-report');
  await page.waitForSelector('#hz-description');
  await page.fill('#hz-description', '');
  await page.click('#hz-submit');
  await page.waitForSelector('.field.invalid .field-error');
  const said = await chinese('a hazard without its description');
  if (!said.some((t) => t.includes('隐患描述'))) throw new Error(`the message names no field: ${said}`);
  step('a message goes once its field is typed in');
  await page.fill('#hz-description', '村口配电箱门损坏');
  await page.waitForSelector('.field.invalid', { state: 'detached' });
  // The note over the button says only what is still wrong: nothing, here.
  if (await page.locator('.note.error', { hasText: '隐患描述' }).count() > 0) throw new Error('the summary still names a fixed field');
  step('a casualty count that is not a number is refused in Chinese');
  await page.click('#kind-emergency');
  await page.waitForSelector('#em-casualties');
  await page.fill('#em-casualties', '三');
  await page.click('#em-submit');
  await page.waitForSelector('.field.invalid .field-error');
  await chinese('an emergency with casualties 三');
  await page.fill('#em-casualties', '');

  step('start and stop a patrol');
  await page.click('#tab-patrol');
  await page.dblclick('#patrol-start');
  await page.waitForSelector('#recording-notice');
  step('patrol notes survive a tab switch and a restart');
  await page.fill('#patrol-notes', '村西路灯不亮两盏');
  await page.click('#tab-today');
  await page.waitForSelector('text=今日工作');
  await page.click('#tab-patrol');
  if (await page.inputValue('#patrol-notes') !== '村西路灯不亮两盏') throw new Error('patrol notes lost on a tab switch');
  await page.reload();
  await page.fill('#pin', '123456');
  await page.click('#unlock');
  // The patrol still records after the restart (the header says so on any screen).
  await page.waitForSelector('header .rec-dot');
  await page.click('#tab-patrol');
  await page.waitForSelector('#recording-notice');
  if (await page.inputValue('#patrol-notes') !== '村西路灯不亮两盏') throw new Error('patrol notes lost on a restart');
  await page.waitForFunction(() => {
    const t = document.querySelector('#patrol-distance')?.textContent || '';
    return parseFloat(t) >= 10;
  });
  await page.click('#patrol-stop');
  await page.waitForSelector('#patrol-start');

  step('register a dispute with a mediation session');
  await page.click('#tab-report');
  await page.click('#kind-dispute');
  await page.waitForSelector('#dp-summary');
  await page.fill('#dp-summary', '两户因宅基地边界发生争执');
  // A party's phone that is no number: named as the screen names it.
  await page.fill('.party-name >> nth=0', '张三');
  await page.fill('.party-name >> nth=1', '李四');
  await page.fill('.party-phone >> nth=0', '1381234');
  await page.click('#dp-submit');
  await page.waitForSelector('.field-error');
  const partyErrors = (await chinese('a dispute with a bad party phone')).join(' ');
  if (!partyErrors.includes('当事人 1')) throw new Error(`the party is not named: ${partyErrors}`);
  await page.fill('.party-phone >> nth=0', '13812345678');
  await page.fill('.party-name >> nth=0', '张三');
  await page.fill('.party-name >> nth=1', '李四');
  await page.dblclick('#dp-submit');
  await page.waitForSelector('#ms-notes');
  await page.fill('#ms-participants', '张三, 李四, 村调解员');
  await page.fill('#ms-notes', '现场丈量后双方认可界址');
  await page.fill('#ms-agreement', '以原界桩为准');
  await page.dblclick('#ms-add');
  await page.waitForSelector('#sessions li >> text=现场丈量后双方认可界址');
  await page.waitForTimeout(300);
  if (await page.locator('#sessions li').count() !== 1) throw new Error('a double tap saved the session twice');
  if (await page.locator('.field-error').count() > 0) throw new Error('a double tap showed an error');
  step('every input is readable at 390 px wide');
  await page.setViewportSize({ width: 390, height: 844 });
  const narrow = async (where) => {
    const found = await page.evaluate(() => Array.from(document.querySelectorAll(
        'input:not([type=checkbox]):not([type=radio]):not([type=file]):not([type=hidden]), textarea, select'))
      .filter((e) => e.offsetParent !== null)
      .map((e) => ({ what: e.id || e.className || e.tagName, w: Math.round(e.getBoundingClientRect().width) }))
      .filter((x) => x.w < 120));
    if (found.length) throw new Error(`${where}: inputs narrower than 120 px: ${JSON.stringify(found)}`);
  };
  await narrow('record page');
  for (const kind of ['hazard', 'opinion', 'dispute', 'emergency']) {
    await page.click('#tab-report');
    await page.click(`#kind-${kind}`);
    await page.waitForSelector('.form');
    await narrow(`${kind} form`);
  }
  await page.click('#tab-households');
  await page.waitForSelector('.hh-list a.card');
  await narrow('households');
  await page.click('.hh-list a.card >> nth=0');
  await page.waitForSelector('#visit-notes');
  await narrow('household page');
  await page.click('#tab-records');
  await narrow('records');
  await page.click('#open-settings');
  await page.waitForSelector('#settings-server');
  await narrow('settings');
  console.log('flows: all steps passed');
} catch (e) {
  failed = true;
  console.error(`flows failed: ${e.message}`);
  try { await page.screenshot({ path: process.env.FAIL_SHOT || '/tmp/gridwalk-flow-failure.png' }); } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

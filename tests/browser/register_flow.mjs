// The household register from the phone to the county, in headless Chromium at phone size:
//   node register_flow.mjs phone <app-url> <server-url> <date>   enrol worker-a, add a newborn
//        born on <date> to the first household, mark a member deceased on <date>, sync; prints
//        "household: <id>" and "deceased: <name>"
//   node register_flow.mjs county <server-url> <household-id> <deceased-name> <date>
//        sign in to the dashboard as admin and read the household's page
import { chromium } from 'playwright-core';

const [mode, ...args] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
page.setDefaultTimeout(20000);
const step = (name) => console.log(`step: ${name}`);
let failed = false;
try {
  if (mode === 'phone') {
    const [url, server, date] = args;
    await page.goto(url);
    step('enrol');
    await page.fill('#server', server);
    await page.fill('#username', 'worker-a');
    await page.fill('#password', 'gridwalk-demo');
    await page.fill('#new-pin', '123456');
    await page.fill('#new-pin2', '123456');
    await page.click('#enrol');
    await page.waitForSelector('text=今日工作');
    step('open a household');
    await page.click('#tab-households');
    await page.click('.hh-card >> nth=0');
    await page.waitForSelector('.add-person');
    const household = page.url().split('/households/')[1];
    step('a newborn born in the future is refused beside its field');
    await page.click('.add-person summary');
    await page.selectOption('#person-kind', 'NEWBORN');
    await page.fill('#person-name', '新生宝宝');
    await page.selectOption('#person-sex', '2');
    await page.selectOption('#person-relation', 'GRANDCHILD');
    await page.fill('#person-birth', '2999-01-01');
    await page.click('#person-save');
    await page.waitForSelector('.add-person .field-error:has-text("晚于今天")');
    step('the newborn, with a double tap');
    await page.fill('#person-birth', date);
    await page.dblclick('#person-save');
    await page.waitForSelector('#person-saved');
    const names = await page.locator('li.member .card-title:has-text("新生宝宝")').count();
    if (names !== 1) throw new Error(`the newborn is listed ${names} times`);
    step('mark a member deceased');
    const member = page.locator('li.member:not(.gone):has([data-mark$=":dead"])').nth(1);
    const title = await member.locator('.card-title').textContent();
    const name = title.trim().split(/\s/)[0];
    await member.locator('[data-mark$=":dead"]').click();
    await page.fill('.status-on', date);
    await page.click('.member-edit button.primary');
    await page.waitForSelector(`li.member.gone:has-text("${name}")`);
    step('sync');
    await page.click('#tab-sync');
    await page.click('#sync-now');
    await page.waitForSelector('#sync-summary');
    console.log(await page.textContent('#sync-summary'));
    console.log(`household: ${household}`);
    console.log(`deceased: ${name}`);
  } else if (mode === 'county') {
    const [server, household, name, date] = args;
    await page.goto(`${server}/login`);
    await page.fill('#username', 'admin');
    await page.fill('#password', 'gridwalk-demo');
    await page.click('#signin');
    await page.waitForSelector('h1:has-text("待办队列")');
    step('the household page');
    await page.goto(`${server}/households/${household}`);
    await page.waitForSelector('#members');
    const baby = await page.textContent('tr.member:has-text("新生宝宝")');
    if (!baby.includes('未办证（新生儿）') || !baby.includes(date)) throw new Error(`newborn row: ${baby}`);
    const gone = await page.textContent(`tr.member.gone:has-text("${name}")`);
    if (!gone.includes(`死亡（${date}）`)) throw new Error(`deceased row: ${gone}`);
    console.log(`county sees: ${baby.trim()} | ${gone.trim()}`);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  console.log('flows: all steps passed');
} catch (e) {
  failed = true;
  console.error(`flows failed: ${e.message}`);
  try { await page.screenshot({ path: process.env.FAIL_SHOT || '/tmp/gridwalk-register-failure.png' }); } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

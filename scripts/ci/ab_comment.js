// Posts pfdeploy's A/B verdict as ONE pull request comment and updates it in place on later runs.
// Called by .github/workflows/pfdeploy-ab-comment.yml through actions/github-script:
//
//   const post = require(`${process.env.GITHUB_WORKSPACE}/scripts/ci/ab_comment.js`);
//   await post({github, context, core, dir: process.env.AB_DIR});
//
// `dir` holds the artifact that action.yml uploaded: comment.md (the Markdown of `pfdeploy ab`),
// pr-number and head-sha. That artifact was written by the pull request's own run, so it is data,
// never code, and the PR number in it is believed only when that pull request's head is the commit
// the run measured (a forged number, or a run overtaken by a newer push, comments nowhere).
// tests/test_ci_workflows.py runs this file under node with a stand-in `github` object.
'use strict';

const fs = require('fs');
const path = require('path');

const MARKER = '<!-- pfdeploy-ab -->';
const MAX_BODY = 60000; // GitHub refuses comments over 65536 characters

function read(dir, name) {
  try {
    return fs.readFileSync(path.join(dir, name), 'utf8');
  } catch (err) {
    return '';
  }
}

async function post({github, context, core, dir}) {
  const run = context.payload.workflow_run || {};
  const {owner, repo} = context.repo;
  const number = read(dir, 'pr-number').trim();
  if (!number) {
    core.info('pfdeploy ab: the artifact names no pull request (not a pull_request run): no comment');
    return 'skipped';
  }
  if (!/^[0-9]{1,9}$/.test(number)) {
    core.setFailed(`pfdeploy ab: pr-number in the artifact is not a number: ${JSON.stringify(number.slice(0, 40))}`);
    return 'refused';
  }
  const issue_number = Number(number);
  const {data: pull} = await github.rest.pulls.get({owner, repo, pull_number: issue_number});
  if (!pull.head || pull.head.sha !== run.head_sha) {
    core.warning(`pfdeploy ab: pull request #${issue_number} is at ${pull.head && pull.head.sha}, this run ` +
                 `measured ${run.head_sha}: a newer push (or a wrong number); no comment`);
    return 'stale';
  }

  let table = read(dir, 'comment.md').trim();
  if (!table) table = 'pfdeploy ab left no verdict table: see the run\'s log.';
  if (table.length > MAX_BODY) {
    table = table.slice(0, MAX_BODY) + '\n\n... (cut: the whole table is in the run\'s job summary)';
  }
  const sha = String(run.head_sha || '').slice(0, 7);
  const body = `${MARKER}\n${table}\n\n<sub>pfdeploy ab of ${sha}: [workflow run](${run.html_url}), ` +
               `${run.conclusion}</sub>\n`;

  const comments = await github.paginate(github.rest.issues.listComments,
                                         {owner, repo, issue_number, per_page: 100});
  const mine = comments.find(c => c.user && c.user.type === 'Bot' && (c.body || '').startsWith(MARKER));
  if (mine) {
    await github.rest.issues.updateComment({owner, repo, comment_id: mine.id, body});
    core.info(`pfdeploy ab: updated comment ${mine.id} on #${issue_number}`);
    return 'updated';
  }
  await github.rest.issues.createComment({owner, repo, issue_number, body});
  core.info(`pfdeploy ab: commented on #${issue_number}`);
  return 'created';
}

module.exports = post;
module.exports.MARKER = MARKER;

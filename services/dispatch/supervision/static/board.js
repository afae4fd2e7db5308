/* The township's board: reads /api/v1/townships/<code>/board with the staff token kept in
   sessionStorage, draws its own small SVG charts (no libraries, no network beyond this server),
   opens a case's timeline and posts 督办 to /api/v1/cases/<id>/supervise. */
(function () {
  "use strict";
  var township = document.body.getAttribute("data-township");
  var KEY = "sanzhang.board.token";
  var state = { data: null, show: "all", caseId: null };
  var $ = function (id) { return document.getElementById(id); };
  var TIMING = { overdue: "已超时", due_soon: "即将超时", on_time: "正常" };
  var CARD = { red: "红牌", yellow: "黄牌", blue: "蓝牌", none: "无" };
  var EVENT = {
    reported: "群众提交", assigned: "派单", accepted: "接单", progress: "进展", resolved: "办结",
    escalated: "上交", referred: "上报市直部门", warned: "超时预警", breached: "超时", reassigned: "改派",
    recategorised: "改分类", supervised: "督办", supervision_answered: "答复督办", signed_off: "部门销号",
    department_returned: "部门退单"
  };

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function pct(v) { return v == null ? "—" : (v * 100).toFixed(1) + "%"; }
  function hours(s) { return s == null ? "—" : (s / 3600).toFixed(1) + "小时"; }
  // Beijing time whatever the device's zone: deadlines are the township's.
  var FORMAT = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", month: "numeric", day: "numeric",
    hour: "2-digit", minute: "2-digit", hour12: false });
  function local(iso) {
    if (!iso) return "—";
    var parts = {};
    FORMAT.formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
    return parts.month + "月" + parts.day + "日 " + parts.hour + ":" + parts.minute;
  }
  function age(h) { return h < 24 ? h.toFixed(1) + "小时" : (h / 24).toFixed(1) + "天"; }

  // A signed-in person's page session (docs/sign-in.md): the HttpOnly cookie goes along by itself;
  // writes carry the session's CSRF token. A pasted token, when there is one, is used instead.
  var csrf = null;
  function api(method, path, body) {
    var token = sessionStorage.getItem(KEY);
    var opts = { method: method, headers: {}, credentials: "same-origin" };
    if (token) { opts.headers.Authorization = "Bearer " + token; }
    else if (csrf && method !== "GET") { opts.headers["X-CSRF-Token"] = csrf; }
    if (body) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var e = new Error(j.message || ("HTTP " + r.status)); e.status = r.status; throw e; }
        return j;
      });
    });
  }

  // -- login ------------------------------------------------------------------------------------
  function showLogin(message) {
    $("board").hidden = true; $("login").hidden = false;
    $("login-error").hidden = !message; $("login-error").textContent = message || "";
  }
  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    load();
  });
  $("logout").addEventListener("click", function () {
    if (sessionStorage.getItem(KEY) || !csrf) { sessionStorage.removeItem(KEY); showLogin(); return; }
    api("POST", "/api/v1/signout").catch(function () {}).then(function () { csrf = null; showLogin(); });
  });
  $("signin-link").setAttribute("href", "/signin?next=/board/" + encodeURIComponent(township));
  $("refresh").addEventListener("click", function () { load(); });

  function load() {
    if (!sessionStorage.getItem(KEY)) {
      return fetch("/api/v1/me", { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.json() : null;
      }).catch(function () { return null; }).then(function (me) {
        if (me && me.session) { csrf = me.csrf_token; return loadBoard(); }
        showLogin();
      });
    }
    return loadBoard();
  }

  function loadBoard() {
    return api("GET", "/api/v1/townships/" + township + "/board").then(function (data) {
      state.data = data;
      $("login").hidden = true; $("board").hidden = false;
      render();
    }).catch(function (e) {
      if (e.status === 401 || e.status === 403 || e.status === 404) {
        sessionStorage.removeItem(KEY);
        showLogin("令牌无效或无权查看本镇(街道)：" + e.message);
      } else { showLogin("加载失败：" + e.message); }
    });
  }

  // -- render -----------------------------------------------------------------------------------
  function render() {
    var d = state.data;
    $("township-name").textContent = "· " + d.name;
    $("quarter").textContent = d.quarter.replace("Q", "年第") + "季度";
    renderPaused(d.paused_cases || []);
    $("updated").textContent = local(d.now);
    renderKpis(d); renderCases(); renderTrend(d.weekly); renderLevels(d.open_by_level, d.age_buckets);
    renderLevelTable(d.figures_by_level); renderStandings(d.standings); renderCards(d.cards); renderVisits(d.overdue_visits);
    renderUnreachable(d.unreachable_posts || []);
  }

  function kpi(id, label, value, note, cls) {
    return '<div class="kpi ' + (cls || "") + '" id="kpi-' + id + '" data-value="' + esc(value) + '">' +
      '<div class="label">' + esc(label) + '</div><div class="value">' + esc(value) + "</div>" +
      '<div class="note">' + esc(note || "") + "</div></div>";
  }
  function renderKpis(d) {
    var f = d.figures;
    $("kpis").innerHTML = [
      kpi("response", "响应率", pct(f.response_rate), f.accepted_on_time + "/" + f.accept_decided + " 按时接单", "rate"),
      kpi("resolve", "解决率", pct(f.resolve_rate), f.resolved + "/" + f.received + " 办结", "rate"),
      kpi("satisfaction", "满意率", pct(f.satisfaction_rate), f.satisfied + "/" + f.rated + " 满意", "rate"),
      kpi("within2d", "2天解决率", pct(f.within_2d_rate), f.resolved_within_2d + " 件2天内解决", "rate"),
      kpi("received", "本季收集问题", f.received, "接单用时中位数 " + hours(f.accept_median_s)),
      kpi("open", "在办工单", d.open_total, d.open_due_soon + " 件即将超时"),
      kpi("overdue", "当前超时", d.open_overdue, "超时 " + f.breaches + " 次（本季）", d.open_overdue ? "bad" : ""),
      kpi("disputes", "调解矛盾纠纷", f.disputes_mediated, "件"),
      kpi("hazards", "排查安全隐患", f.hazards_found, "个"),
      kpi("micro", "提供微服务", f.micro_services, "件"),
      kpi("exchanges", "积分兑换", (d.exchanges || {}).count || 0, "本季 " + ((d.exchanges || {}).points || 0) + " 分"),
      kpi("paused", "挂起中", (d.paused_cases || []).length, "挂起累计 " + hours(f.paused_s || 0))
    ].join("");
  }

  function renderPaused(rows) {
    if (!rows.length) { $("paused").innerHTML = '<div class="empty">没有挂起的工单</div>'; return; }
    $("paused").innerHTML = "<table id='paused-table'><tr><th>查询码</th><th>经办</th><th>原因</th><th>缺什么</th><th>挂起自</th><th>最迟恢复</th></tr>" +
      rows.slice(0, 50).map(function (c) {
        return "<tr data-id='" + esc(c.id) + "'><td>" + esc(c.tracking_no) + "</td><td>" + esc(c.unit_name || "") + " " +
          esc(c.lead_name || "") + "</td><td>" + esc(c.pause.reason_text) + "</td><td>" + esc(c.pause.note) +
          "</td><td>" + esc(local(c.pause.since)) + "</td><td>" + esc(local(c.pause.resume_at)) + "</td></tr>";
      }).join("") + (rows.length > 50 ? "<tr><td colspan=6 class=muted>另有 " + (rows.length - 50) + " 件</td></tr>" : "") +
      "</table>";
  }

  function renderCases() {
    var list = state.data.open_cases.filter(function (c) { return state.show === "all" || c.timing === state.show; });
    $("open-summary").textContent = "共 " + state.data.open_total + " 件，超时 " + state.data.open_overdue +
      " 件，即将超时 " + state.data.open_due_soon + " 件";
    if (!list.length) { $("open-cases").innerHTML = '<div class="empty">没有工单</div>'; return; }
    $("open-cases").innerHTML = list.map(function (c) {
      return '<div class="case ' + esc(c.timing) + '" data-case-id="' + esc(c.id) + '" tabindex="0">' +
        '<span class="badge ' + esc(c.timing) + '">' + esc(TIMING[c.timing] || c.status_text) + "</span>" +
        '<div class="what"><div><b>' + esc(c.category_name) + "</b> " + esc(c.summary) + "</div>" +
        '<div class="who">' + esc(c.level_name) + " · " + esc(c.unit_name) + " " + esc(c.lead_name || "") +
        " · " + esc(c.status_text) + " · " + esc(c.tracking_no) +
        (c.unanswered_supervisions ? ' <span class="sup">督办未答复 ' + c.unanswered_supervisions + "</span>" : "") +
        "</div></div>" +
        '<div class="age">已 ' + age(c.age_hours) + "<br>时限 " + esc(local(c.deadline)) + "</div></div>";
    }).join("");
  }
  $("filters").addEventListener("click", function (e) {
    var b = e.target.closest("button"); if (!b) return;
    state.show = b.getAttribute("data-show");
    Array.prototype.forEach.call($("filters").children, function (x) { x.classList.toggle("on", x === b); });
    renderCases();
  });
  $("open-cases").addEventListener("click", function (e) {
    var row = e.target.closest(".case"); if (row) openCase(row.getAttribute("data-case-id"));
  });
  $("open-cases").addEventListener("keydown", function (e) {
    var row = e.target.closest(".case"); if (row && e.key === "Enter") openCase(row.getAttribute("data-case-id"));
  });

  // -- charts (inline SVG) ----------------------------------------------------------------------
  var SERIES = [["response_rate", "响应率", "#1565c0"], ["resolve_rate", "解决率", "#2e7d32"],
                ["satisfaction_rate", "满意率", "#e08a00"]];
  function renderTrend(weeks) {
    var W = 520, H = 220, L = 34, R = 30, T = 10, B = 28;
    if (!weeks.length) { $("trend-chart").innerHTML = '<div class="empty">暂无数据</div>'; $("trend-legend").innerHTML = ""; return; }
    var n = weeks.length, step = (W - L - R) / Math.max(n, 1);
    var maxN = Math.max.apply(null, weeks.map(function (w) { return w.received; }).concat([1]));
    var x = function (i) { return L + step * (i + 0.5); };
    var y = function (v) { return T + (H - T - B) * (1 - v); };
    var s = ['<svg viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="三率周趋势">'];
    [0, 0.5, 1].forEach(function (v) {
      s.push('<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y(v) + '" y2="' + y(v) + '" stroke="#e3e7ec"/>');
      s.push('<text x="' + (L - 4) + '" y="' + (y(v) + 4) + '" text-anchor="end">' + v * 100 + "%</text>");
    });
    weeks.forEach(function (w, i) {
      var h = (H - T - B) * 0.45 * w.received / maxN;
      s.push('<rect x="' + (x(i) - step * 0.3) + '" y="' + (H - B - h) + '" width="' + step * 0.6 + '" height="' + h +
        '" fill="#dbe6f3"><title>' + esc(w.week) + " 收集 " + w.received + " 件</title></rect>");
      if (i % Math.ceil(n / 6) === 0 || i === n - 1) {
        s.push('<text x="' + x(i) + '" y="' + (H - 8) + '" text-anchor="middle">' + esc(w.week.slice(5)) + "</text>");
      }
    });
    s.push('<text x="' + (W - R + 4) + '" y="' + (H - B) + '">' + maxN + "件</text>");
    SERIES.forEach(function (sr) {
      var pts = [];
      weeks.forEach(function (w, i) { if (w[sr[0]] != null) pts.push([x(i), y(w[sr[0]]), w]); });
      if (pts.length > 1) {
        s.push('<polyline fill="none" stroke="' + sr[2] + '" stroke-width="2" points="' +
          pts.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" ") + '"/>');
      }
      pts.forEach(function (p) {
        s.push('<circle cx="' + p[0].toFixed(1) + '" cy="' + p[1].toFixed(1) + '" r="3" fill="' + sr[2] + '"><title>' +
          esc(p[2].week) + " " + sr[1] + " " + pct(p[2][sr[0]]) + "</title></circle>");
      });
    });
    s.push("</svg>");
    $("trend-chart").innerHTML = s.join("");
    $("trend-legend").innerHTML = SERIES.map(function (sr) {
      return '<span><i style="background:' + sr[2] + '"></i>' + sr[1] + "</span>";
    }).join("") + '<span><i style="background:#dbe6f3;height:8px"></i>收集问题(件)</span>';
  }

  var AGE_COLOURS = ["#9ccc65", "#fdd835", "#fb8c00", "#c62828"];
  function renderLevels(rows, buckets) {
    var W = 520, rowH = 30, L = 76, R = 100, H = rows.length * rowH + 30;
    var max = Math.max.apply(null, rows.map(function (r) { return r.total; }).concat([1]));
    var s = ['<svg viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="在办工单层级与时长">'];
    rows.forEach(function (r, i) {
      var y0 = 6 + i * rowH, xpos = L;
      s.push('<text x="' + (L - 6) + '" y="' + (y0 + 15) + '" text-anchor="end">' + esc(r.level_name) + "</text>");
      buckets.forEach(function (b, j) {
        var w = (W - L - R) * (r[b] || 0) / max;
        if (w > 0) {
          s.push('<rect x="' + xpos.toFixed(1) + '" y="' + y0 + '" width="' + w.toFixed(1) + '" height="20" fill="' +
            AGE_COLOURS[j] + '"><title>' + esc(r.level_name) + " " + esc(b) + "：" + r[b] + " 件</title></rect>");
        }
        xpos += w;
      });
      s.push('<text x="' + (xpos + 4).toFixed(1) + '" y="' + (y0 + 15) + '">' + r.total +
        (r.overdue ? "（超时" + r.overdue + "）" : "") + "</text>");
    });
    var lx = L;
    buckets.forEach(function (b, j) {
      s.push('<rect x="' + lx + '" y="' + (H - 16) + '" width="10" height="10" fill="' + AGE_COLOURS[j] + '"/>');
      s.push('<text x="' + (lx + 14) + '" y="' + (H - 7) + '">' + esc(b) + "</text>");
      lx += 80;
    });
    s.push("</svg>");
    $("level-chart").innerHTML = s.join("");
  }

  function renderLevelTable(rows) {
    if (!rows.length) { $("levels").innerHTML = '<div class="empty">本季度暂无工单</div>'; return; }
    $("levels").innerHTML = "<table><tr><th>层级</th><th class=num>经手</th><th class=num>响应率</th>" +
      "<th class=num>办结</th><th class='num hide-narrow'>上交</th><th class=num>超时</th>" +
      "<th class='num hide-narrow'>接单中位</th></tr>" + rows.map(function (r) {
        return "<tr><td>" + esc(r.label) + "</td><td class=num>" + r.received + "</td><td class=num>" +
          pct(r.response_rate) + "</td><td class=num>" + r.resolved + "</td><td class='num hide-narrow'>" +
          (r.escalations + r.breached_away) + "</td><td class=num>" + r.breaches + "</td><td class='num hide-narrow'>" +
          hours(r.accept_median_s) + "</td></tr>";
      }).join("") + "</table>";
  }

  function renderStandings(rows) {
    rows = rows.filter(function (r) { return r.in_post; });
    if (!rows.length) { $("standings").innerHTML = '<div class="empty">暂无</div>'; return; }
    var shown = rows.length > 12 ? rows.slice(0, 8).concat([null]).concat(rows.slice(-4)) : rows;
    var max = Math.max.apply(null, rows.map(function (r) { return Math.abs(r.points); }).concat([1]));
    $("standings").innerHTML = "<table id='standings-table'><tr><th>三长</th><th class=num>积分</th><th></th>" +
      "<th class=num>满意率</th><th class=num>超时</th></tr>" + shown.map(function (r) {
        if (!r) return "<tr><td colspan=5 class=muted>…</td></tr>";
        return "<tr data-lead='" + esc(r.lead_name) + "'><td>" + esc(r.lead_name) + ' <span class="muted">' +
          esc(r.title) + " " + esc(r.path) + "</span></td><td class=num>" + r.points + '</td><td><span class="bar' +
          (r.points < 0 ? " neg" : "") + '" style="width:' + Math.round(60 * Math.abs(r.points) / max) + 'px"></span></td>' +
          "<td class=num>" + pct(r.satisfaction_rate) + "</td><td class=num>" + r.breaches + "</td></tr>";
      }).join("") + "</table>";
  }

  function renderCards(cards) {
    var shown = cards.filter(function (c) { return (c.final || c.proposed) !== "none"; });
    if (!shown.length) {
      $("cards").innerHTML = '<div class="empty">' + (cards.length ? "本季度无拟亮牌" : "尚未进行本季度研判") + "</div>";
      return;
    }
    $("cards").innerHTML = "<table><tr><th>牌</th><th>三长</th><th>原因</th><th>状态</th></tr>" + shown.map(function (c) {
      var card = c.final || c.proposed;
      return "<tr><td><span class='badge " + esc(card) + "'>" + esc(CARD[card]) + "</span></td><td>" + esc(c.lead_name) +
        ' <span class="muted">' + esc(c.path) + "</span></td><td>" + esc((c.reasons || []).join("；")) + "</td><td>" +
        (c.status === "proposed" ? "拟定" : c.status === "confirmed" ? "已确认" : "已调整") + "</td></tr>";
    }).join("") + "</table>";
  }

  function renderVisits(rows) {
    if (!rows.length) { $("visits").innerHTML = '<div class="empty">没有走访超期的住户</div>'; return; }
    $("visits").innerHTML = "<table id='visits-table'><tr><th>户主</th><th>所在邻</th><th>邻长</th><th>超期自</th></tr>" +
      rows.slice(0, 50).map(function (v) {
        return "<tr><td>" + esc(v.head) + (v.key_household ? " <span class='badge overdue'>重点户</span>" : "") +
          "</td><td>" + esc([v.village, v.group, v.neighbourhood].join("")) + "</td><td>" + esc(v.lead_name || "（空缺）") +
          "</td><td>" + esc(local(v.overdue_since)) + "</td></tr>";
      }).join("") + (rows.length > 50 ? "<tr><td colspan=4 class=muted>另有 " + (rows.length - 50) + " 户</td></tr>" : "") +
      "</table>";
  }

  // Posts that can hold a case but where nobody is reachable by the enabled channels.
  function renderUnreachable(rows) {
    if (!rows.length) { $("unreachable").innerHTML = '<div class="empty">每个岗位都有人可联系</div>'; return; }
    $("unreachable").innerHTML = "<table id='unreachable-table'><tr><th>岗位</th><th>原因</th></tr>" +
      rows.slice(0, 50).map(function (r) {
        return "<tr><td>" + esc(r.unit_name) + " <span class='muted'>" + esc(r.title) + "</span></td><td>" +
          esc(r.reason) + "</td></tr>";
      }).join("") + (rows.length > 50 ? "<tr><td colspan=2 class=muted>另有 " + (rows.length - 50) + " 个岗位</td></tr>" : "") +
      "</table>";
  }

  // -- a case: timeline and 督办 ----------------------------------------------------------------
  function openCase(id) {
    state.caseId = id;
    $("drawer").hidden = false;
    $("supervise-result").textContent = ""; $("supervise-result").className = "result";
    $("timeline").innerHTML = "<li>加载中…</li>";
    return api("GET", "/api/v1/cases/" + encodeURIComponent(id)).then(renderCase).catch(function (e) {
      $("timeline").innerHTML = "<li>" + esc(e.message) + "</li>";
    });
  }
  function renderCase(c) {
    $("case-title").textContent = c.category_name + " · " + c.tracking_no;
    $("case-meta").innerHTML = "<dl class='meta'>" + [
      ["状态", c.status_text + (c.timing ? "（" + (TIMING[c.timing] || c.timing) + "）" : "")],
      ["经办", c.level_name + " · " + (c.assignee.unit_name || "") + " " + (c.assignee.lead_name || "")],
      ["时限", local(c.deadline)], ["承诺办结", local(c.promise_due)], ["问题", c.summary],
      ["督办未答复", String(c.unanswered_supervisions)]
    ].map(function (p) { return "<dt>" + esc(p[0]) + "</dt><dd>" + esc(p[1]) + "</dd>"; }).join("") + "</dl>";
    $("timeline").innerHTML = c.timeline.map(function (e) {
      var who = [e.unit_name, e.lead_name].filter(Boolean).join(" ");
      var text = [e.reason, e.note, e.skipped].filter(Boolean).join("；");
      return "<li class='" + esc(e.type) + "' data-type='" + esc(e.type) + "'><span class='when'>" + esc(local(e.at)) +
        "</span> <b>" + esc(EVENT[e.type] || e.type) + "</b> " + esc(who) +
        (e.actor && e.actor !== "system" ? " <span class='muted'>（" + esc(e.actor) + "）</span>" : "") +
        (text ? "<div>" + esc(text) + "</div>" : "") + "</li>";
    }).join("");
    var open = c.status === "assigned" || c.status === "accepted";
    $("supervise-form").hidden = !open;
  }
  $("drawer-close").addEventListener("click", function () { $("drawer").hidden = true; });
  $("drawer").addEventListener("click", function (e) { if (e.target === $("drawer")) $("drawer").hidden = true; });
  $("supervise-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var note = $("supervise-note").value.trim();
    if (!note) return;
    $("supervise-submit").disabled = true;
    api("POST", "/api/v1/cases/" + encodeURIComponent(state.caseId) + "/supervise", { note: note }).then(function (c) {
      $("supervise-note").value = "";
      $("supervise-result").textContent = "已督办，等待经办人答复";
      $("supervise-result").className = "result ok";
      renderCase(c);
      load();
    }).catch(function (err) {
      $("supervise-result").textContent = "督办失败：" + err.message;
      $("supervise-result").className = "result err";
    }).then(function () { $("supervise-submit").disabled = false; });
  });

  load();
  setInterval(function () { if (!$("board").hidden && $("drawer").hidden) load(); }, 60000);
})();

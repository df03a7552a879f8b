import Mustache

/// Server-rendered pages (swift-mustache). `{{x}}` is HTML-escaped; `{{{x}}}` is used only for
/// markup the hub builds itself (the SVG chart).
enum Views {
    static let library: MustacheLibrary = {
        var templates: [String: MustacheTemplate] = [:]
        for (name, text) in sources { templates[name] = try! MustacheTemplate(string: text) }
        return MustacheLibrary(templates: templates)
    }()

    static func render(_ name: String, _ context: [String: Any]) -> String {
        var ctx = context
        ctx["content"] = library.render(context, withTemplate: name) ?? ""
        return library.render(ctx, withTemplate: "layout") ?? ""
    }

    static let sources: [String: String] = [
        "layout": """
        <!DOCTYPE html>
        <html lang="zh-CN">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} - 防返贫监测预警</title>
        <link rel="stylesheet" href="/static/hub.css">
        <script src="/static/hub.js" defer></script>
        </head>
        <body data-user="{{#user}}{{username}}{{/user}}">
        <header class="top">
          <a class="brand" href="/">防返贫监测预警</a>
          {{#user}}
          <nav>
            {{#canCases}}<a href="/inbox">预警案件</a>{{/canCases}}
            {{#canDashboard}}<a href="/dashboard">全县概况</a><a href="/dispatch">待分派</a>{{/canDashboard}}
            {{#canSources}}<a href="/sources">数据来源</a><a href="/mappings">映射与规则</a>{{/canSources}}
            {{#isAdmin}}<a href="/admin/users">用户</a><a href="/admin/audit">审计日志</a>{{/isAdmin}}
          </nav>
          <form class="logout" method="post" action="/logout"><input type="hidden" name="_csrf" value="{{csrf}}"><span class="who">{{displayName}}（{{roleName}}）</span><button type="submit">退出</button></form>
          {{/user}}
        </header>
        <main>
        {{#flash}}<p class="flash">{{flash}}</p>{{/flash}}
        <div id="offline-status" class="offline" hidden></div>
        {{{content}}}
        </main>
        </body>
        </html>
        """,
        "login": """
        <section class="card narrow">
          <h1>登录</h1>
          {{#error}}<p class="error">{{error}}</p>{{/error}}
          <form method="post" action="/login">
            <input type="hidden" name="_csrf" value="{{loginCsrf}}">
            <input type="hidden" name="next" value="{{next}}">
            <label>用户名<input name="username" autocomplete="username" required value="{{username}}"></label>
            <label>密码<input name="password" type="password" autocomplete="current-password" required></label>
            <button type="submit" class="primary">登录</button>
          </form>
        </section>
        """,
        "inbox": """
        <h1>预警案件</h1>
        <div class="counts">
          <span>未销号 <b>{{openCount}}</b></span>
          <span class="overdue">已逾期 <b>{{overdueCount}}</b></span>
          <span>已销号 <b>{{closedCount}}</b></span>
        </div>
        <form class="filters" method="get" action="/inbox">
          <div class="search"><input type="search" name="q" value="{{search}}" maxlength="40" placeholder="姓名、户编号或身份证号（可只输后几位）" aria-label="搜索"><button type="submit">搜索</button></div>
          <details class="more"{{#filtered}} open{{/filtered}}><summary>筛选{{#filtered}}（已筛选）{{/filtered}}</summary>
          <div class="choices">
          <select name="status"><option value="">全部状态</option><option value="open" {{#isOpen}}selected{{/isOpen}}>未销号</option><option value="closed" {{#isClosed}}selected{{/isClosed}}>已销号</option></select>
          <select name="rule"><option value="">全部预警类型</option>{{{ruleOptions}}}</select>
          <select name="village"><option value="">全部村</option>{{{villageOptions}}}</select>
          <select name="severity"><option value="">全部等级</option><option value="high" {{#sevHigh}}selected{{/sevHigh}}>高</option><option value="medium" {{#sevMedium}}selected{{/sevMedium}}>中</option><option value="low" {{#sevLow}}selected{{/sevLow}}>低</option></select>
          <label class="check"><input type="checkbox" name="overdue" value="1" {{#overdueOnly}}checked{{/overdueOnly}}>只看逾期</label>
          <button type="submit">筛选</button>
          {{#canExport}}<a class="button" href="/ledger.xlsx?{{query}}">导出台账 Excel</a><a class="button" href="/ledger.csv?{{query}}">CSV</a>{{/canExport}}
          {{#filtered}}<a class="button" href="/inbox">清除筛选</a>{{/filtered}}
          <a class="button" href="/print?{{query}}">打印未销号案件的核实表</a>
          </div>
          </details>
        </form>
        {{^hasCases}}<p class="empty">没有符合条件的案件。</p>{{/hasCases}}
        <ul class="cases">{{{caseItems}}}</ul>
        {{#paged}}<nav class="pager">{{#prevLink}}<a class="button" href="{{prevLink}}">上一页</a>{{/prevLink}}<span>第 {{pageNumber}} 页</span>{{#nextLink}}<a class="button" href="{{nextLink}}">下一页</a>{{/nextLink}}</nav>{{/paged}}
        """,
        "case": """
        <p><a href="/inbox">← 返回案件列表</a></p>
        {{#done}}<p class="flash" role="status">{{done}}</p>{{/done}}
        {{^canVisit}}{{#visitError}}<p class="error" role="alert">{{visitError}}</p>{{/visitError}}{{/canVisit}}
        <h1>{{heading}} <span class="badge sev-{{severity}}">{{severityName}}</span> <span class="badge status-{{status}}">{{statusName}}</span>{{#reopened}} <span class="badge reopened">已重新打开</span>{{/reopened}}</h1>
        <p class="meta">案件 #{{id}} · {{township}} {{village}} · 期间 {{period}} · 立案 {{openedAt}} · 期限 <span class="{{#overdue}}overdue{{/overdue}}">{{deadline}}{{#overdue}}（已逾期）{{/overdue}}</span></p>
        <p class="print-link"><a class="button" href="/cases/{{id}}/print">打印入户核实表</a></p>
        <section class="card">
          <h2>为什么预警</h2>
          {{#alerts}}
          <article class="alert sev-{{severity}}">
            <h3>{{title}}</h3>
            <p class="message">{{message}}</p>
            <details><summary>依据的部门记录 {{evidenceCount}} 条{{#ruleVersion}}（规则版本 {{ruleVersion}}）{{/ruleVersion}}</summary>
              {{#evidence}}
              <table class="evidence"><caption>{{typeTitle}}{{#place}} · {{place}}{{/place}}</caption>
                <tbody>{{#fields}}<tr><th>{{label}}</th><td>{{value}}</td></tr>{{/fields}}</tbody></table>
              {{/evidence}}
            </details>
          </article>
          {{/alerts}}
        </section>
        {{#household}}
        <section class="card">
          <h2>家庭情况</h2>
          <dl class="grid">
            {{#fields}}<dt>{{label}}</dt><dd>{{value}}</dd>{{/fields}}
          </dl>
          <h3>家庭成员</h3>
          <ul class="members">{{#members}}<li><b>{{name}}</b> <span class="relation">{{relation}}</span><br><span class="mono">{{id}}</span>{{#health}} · {{health}}{{/health}}{{#disability}} · {{disability}}{{/disability}}</li>{{/members}}</ul>
        </section>
        {{/household}}
        {{^household}}<section class="card"><h2>预警对象</h2><p>{{subjectText}}</p>{{#outsideNote}}<p class="note">{{outsideNote}}</p>{{/outsideNote}}</section>{{/household}}
        <section class="card" id="photos">
          <h2>核实照片</h2>
          {{^photos}}<p class="empty">还没有照片。</p>{{/photos}}
          <div class="photos">{{#photos}}<figure><a href="/photos/{{id}}"><img src="/photos/{{id}}" alt="核实照片 {{id}}" loading="lazy"></a>
            <figcaption>{{note}} · {{by}} {{at}}{{#kept}} · 含位置信息{{/kept}}</figcaption></figure>{{/photos}}</div>
          {{#canPhoto}}
          <form method="post" action="/cases/{{id}}/photos" enctype="multipart/form-data" class="photo-upload">
            <input type="hidden" name="_csrf" value="{{csrf}}">
            <label>拍照或选择照片（JPEG、PNG，每张不超过 8 MB）<input type="file" name="photo" accept="image/jpeg,image/png" capture="environment" required></label>
            <label>说明<input name="note" maxlength="200" placeholder="如：住房情况、病历"></label>
            <label class="check"><input type="checkbox" name="keep_location" value="1">保留照片中的位置信息（默认去除）</label>
            <button type="submit">上传照片</button>
          </form>
          {{/canPhoto}}
        </section>
        {{#canVisit}}
        <section class="card" id="visit">
          <h2>{{visitHeading}}</h2>
          {{#visitError}}<p class="error" role="alert">{{visitError}}</p>{{/visitError}}
          <form method="post" action="/cases/{{id}}/visit#visit" class="visit">
            <input type="hidden" name="_csrf" value="{{csrf}}">
            <label>核实日期<input type="date" name="visited_on" required value="{{form.visitedOn}}" min="{{openedAt}}" max="{{today}}"></label>
            {{#errors.visited_on}}<p class="field-error">{{errors.visited_on}}</p>{{/errors.visited_on}}
            <label>{{visitorsLabel}}<input name="visitors" required value="{{form.visitors}}" placeholder="如：王五、李四（村干部）"></label>
            {{#errors.visitors}}<p class="field-error">{{errors.visitors}}</p>{{/errors.visitors}}
            <label>核实情况<textarea name="findings" required rows="4" placeholder="{{findingsHint}}">{{form.findings}}</textarea></label>
            {{#errors.findings}}<p class="field-error">{{errors.findings}}</p>{{/errors.findings}}
            <fieldset><legend>核实结果</legend>
              {{#outcomes}}<label class="radio"><input type="radio" name="outcome" value="{{value}}" required {{#checked}}checked{{/checked}}>{{label}}</label>{{/outcomes}}
            </fieldset>
            {{#errors.outcome}}<p class="field-error">{{errors.outcome}}</p>{{/errors.outcome}}
            {{#canMonitor}}<label>监测对象类别（纳入监测时必选）<select name="monitoring_type"><option value="">—</option>{{#monitoringTypes}}<option {{#selected}}selected{{/selected}}>{{name}}</option>{{/monitoringTypes}}</select></label>
            {{#errors.monitoring_type}}<p class="field-error">{{errors.monitoring_type}}</p>{{/errors.monitoring_type}}{{/canMonitor}}
            <label>原因（无风险、数据有误时必填）<input name="reason" value="{{form.reason}}"></label>
            {{#errors.reason}}<p class="field-error">{{errors.reason}}</p>{{/errors.reason}}
            <button type="submit" class="primary">提交并销号</button>
          </form>
        </section>
        {{/canVisit}}
        {{#canDispatch}}
        <section class="card">
          <h2>{{#unassigned}}分派至乡镇{{/unassigned}}{{^unassigned}}改派乡镇{{/unassigned}}</h2>
          {{#unassigned}}<p>该案件没有可用的乡镇信息，等待县里分派。</p>{{/unassigned}}
          <form method="post" action="/dispatch" class="dispatch-one">
            <input type="hidden" name="_csrf" value="{{csrf}}"><input type="hidden" name="ids[]" value="{{id}}"><input type="hidden" name="back" value="case">
            <label>乡镇<select name="township" required><option value="">请选择</option>{{#townships}}<option value="{{code}}">{{name}}</option>{{/townships}}</select></label>
            <button type="submit">分派</button>
          </form>
        </section>
        {{/canDispatch}}
        {{#canReopen}}
        <section class="card">
          <h2>重新打开</h2>
          <form method="post" action="/cases/{{id}}/reopen">
            <input type="hidden" name="_csrf" value="{{csrf}}">
            <label>原因<input name="reason" required></label>
            <button type="submit">重新打开案件</button>
          </form>
        </section>
        {{/canReopen}}
        <section class="card">
          <h2>处理经过</h2>
          <ul class="history">
            <li>{{openedAt}} 系统：根据部门数据生成预警并立案</li>
            {{#events}}<li>{{at}} {{who}}：{{action}} — {{detail}}</li>{{/events}}
          </ul>
          {{#visits}}<div class="visit-record"><b>{{visitedOn}} 入户核实</b>（{{visitors}}）：{{findings}} → <b>{{outcome}}</b>{{#monitoringType}}（{{monitoringType}}）{{/monitoringType}}{{#reason}}，原因：{{reason}}{{/reason}}</div>{{/visits}}
        </section>
        """,
        "dashboard": """
        <h1>全县概况</h1>
        <section class="card">
          <h2>各乡镇案件</h2>
          {{#awaitingDispatch}}<p class="flash">有 <b>{{awaitingDispatch}}</b> 件案件没有可用的乡镇信息，<a href="/dispatch">等待县里分派</a>。</p>{{/awaitingDispatch}}
          <table><thead><tr><th>乡镇</th><th>未销号</th><th>今日逾期</th><th>已销号</th><th>纳入监测</th></tr></thead>
          <tbody>{{#townships}}<tr><td><a href="{{link}}">{{name}}</a></td><td>{{open}}</td><td class="{{#late}}overdue{{/late}}">{{overdue}}</td><td>{{closed}}</td><td>{{monitored}}</td></tr>{{/townships}}</tbody></table>
        </section>
        <section class="card">
          <h2>各类预警及核实准确率</h2>
          <table><thead><tr><th>预警类型</th><th>案件</th><th>核实属实</th><th>核实不属实</th><th>准确率</th></tr></thead>
          <tbody>{{#rules}}<tr><td>{{title}}</td><td>{{cases}}</td><td>{{confirmed}}</td><td>{{rejected}}</td><td>{{precision}}</td></tr>{{/rules}}</tbody></table>
          <p class="note">准确率 = 核实属实（纳入监测、已是监测对象）÷ 已核实（不含无法核实）。</p>
        </section>
        <section class="card">
          <h2>逐月趋势</h2>
          {{{trend}}}
        </section>
        """,
        "print": """
        <p class="no-print"><a href="{{back}}">← 返回</a> <button type="button" class="primary" data-print>打印</button> 共 {{count}} 份{{#more}}（只列前 {{count}} 件，请缩小筛选范围）{{/more}}</p>
        {{#sheets}}
        <article class="sheet">
          <h1>防止返贫动态监测 入户核实表</h1>
          <table class="form-table">
            <tr><th>案件号</th><td>{{id}}</td><th>期间</th><td>{{period}}</td></tr>
            <tr><th>乡镇</th><td>{{township}}</td><th>行政村</th><td>{{village}}</td></tr>
            <tr><th>对象</th><td colspan="3">{{subject}}</td></tr>
            <tr><th>核实期限</th><td>{{deadline}}</td><th>预警等级</th><td>{{severity}}</td></tr>
          </table>
          <h2>预警原因</h2>
          <ol>{{#alerts}}<li><b>{{title}}</b>：{{message}}</li>{{/alerts}}</ol>
          {{#hasMembers}}<h2>家庭成员</h2>
          <table class="form-table"><tr><th>姓名</th><th>关系</th><th>身份证号</th><th>健康</th><th>残疾</th></tr>
          {{#members}}<tr><td>{{name}}</td><td>{{relation}}</td><td>{{id}}</td><td>{{health}}</td><td>{{disability}}</td></tr>{{/members}}</table>{{/hasMembers}}
          <h2>核实情况</h2>
          <div class="blank-lines"></div>
          <p>核实结果：□ 纳入监测（□ 脱贫不稳定户 □ 边缘易致贫户 □ 突发严重困难户） □ 已是监测对象·更新帮扶 □ 无风险 □ 数据有误 □ 无法核实</p>
          <p>原因：____________________________________________</p>
          <p class="signatures">入户人员签字：______________　户主（当事人）签字：______________　核实日期：____年__月__日</p>
        </article>
        {{/sheets}}
        """,
        "dispatch": """
        <h1>待分派案件</h1>
        <p>这些案件的对象不在监测名单中，部门数据里也没有村或乡镇代码。请根据姓名、住址、就诊机构等线索，勾选后分派给乡镇核实。共 <b>{{waiting}}</b> 件{{#more}}，先显示 {{shown}} 件{{/more}}。</p>
        {{#message}}<p class="flash">{{message}}</p>{{/message}}
        {{^hasCases}}<p class="empty">没有等待分派的案件。</p>{{/hasCases}}
        {{#hasCases}}
        <form method="post" action="/dispatch" class="dispatch">
          <input type="hidden" name="_csrf" value="{{csrf}}">
          <ul class="cases">
          {{#cases}}<li class="case sev-{{severity}}"><label class="pick"><input type="checkbox" name="ids[]" value="{{id}}">
            <span><a href="/cases/{{id}}">案件 #{{id}}</a> {{subject}} · 期限 {{deadline}}<br><b>{{titles}}</b>
            {{#clues}}<br><small>{{.}}</small>{{/clues}}</span></label></li>{{/cases}}
          </ul>
          <div class="dispatch-bar">
            <label>分派至<select name="township" required><option value="">请选择乡镇</option>{{#townships}}<option value="{{code}}">{{name}}</option>{{/townships}}</select></label>
            <button type="submit" class="primary">分派勾选的案件</button>
          </div>
        </form>
        {{/hasCases}}
        """,
        "sources": """
        <h1>数据来源</h1>
        {{#feedAlerts.count}}<section class="card"><h2 class="error">送达预警</h2><ul>{{#feedAlerts}}<li><b>{{source}}</b> {{period}}：{{message}}（{{at}}）</li>{{/feedAlerts}}</ul></section>{{/feedAlerts.count}}
        <table class="cards"><thead><tr><th>来源</th><th>部门</th><th>最近运行</th><th>状态</th><th>读取</th><th>新增</th><th>更新</th><th>未变</th><th>隔离</th><th>时间</th></tr></thead>
        <tbody>{{#sources}}<tr class="{{#failed}}row-failed{{/failed}}"><td data-label="来源">{{source}}<br><small>{{title}}</small></td><td data-label="部门">{{department}}</td><td data-label="最近运行">{{period}} #{{run}}{{#documents}}<br><small>读取：{{documents}}</small>{{/documents}}</td><td data-label="状态">{{status}}{{#error}}<br><small class="error">{{error}}</small>{{/error}}</td><td data-label="读取">{{read}}</td><td data-label="新增">{{inserted}}</td><td data-label="更新">{{updated}}</td><td data-label="未变">{{unchanged}}</td><td data-label="隔离">{{#quarantined}}<a href="/sources/{{source}}/quarantine">{{quarantined}}</a>{{/quarantined}}{{^quarantined}}0{{/quarantined}}</td><td data-label="时间">{{at}}</td></tr>{{/sources}}</tbody></table>
        """,
        "quarantine": """
        <p><a href="/sources">← 数据来源</a></p>
        <h1>{{source}} 隔离的行（运行 #{{run}}）</h1>
        <table class="cards"><thead><tr><th>文件</th><th>行号</th><th>原因</th><th>原始数据</th></tr></thead>
        <tbody>{{#entries}}<tr><td data-label="文件">{{document}}</td><td data-label="行号">{{row}}</td><td data-label="原因">{{reasons}}</td><td data-label="原始数据" class="raw">{{raw}}</td></tr>{{/entries}}</tbody></table>
        """,
        "mappings": """
        <h1>映射与规则</h1>
        {{#problems.count}}<section class="card"><h2 class="error">有错误的文件（已跳过，原来的版本继续使用）</h2><ul>{{#problems}}<li class="mono">{{.}}</li>{{/problems}}</ul></section>{{/problems.count}}
        {{#warnings.count}}<section class="card"><h2 class="error">不会触发的规则</h2><p>这些规则读取的字段没有任何映射填写，请补上映射或停用规则。</p><ul>{{#warnings}}<li>{{.}}</li>{{/warnings}}</ul></section>{{/warnings.count}}
        <section class="card"><h2>映射</h2><table class="cards"><thead><tr><th>来源</th><th>名称</th><th>连接器</th><th>格式</th><th>产出</th><th>版本</th></tr></thead>
        <tbody>{{#mappings}}<tr><td data-label="来源">{{source}}</td><td data-label="名称">{{title}}</td><td data-label="连接器">{{connector}}</td><td data-label="格式">{{format}}</td><td data-label="产出">{{outputs}}</td><td data-label="版本" class="mono">{{version}}</td></tr>{{/mappings}}</tbody></table></section>
        <section class="card"><h2>规则</h2><table class="cards"><thead><tr><th>规则</th><th>名称</th><th>对象</th><th>等级</th><th>版本</th></tr></thead>
        <tbody>{{#rules}}<tr><td data-label="规则">{{name}}</td><td data-label="名称">{{title}}</td><td data-label="对象">{{subject}}</td><td data-label="等级">{{severity}}</td><td data-label="版本" class="mono">{{version}}</td></tr>{{/rules}}</tbody></table></section>
        {{#replay}}<section class="card" id="replay"><h2>最近一次重放：{{period}}（{{at}}）</h2>
        <p>映射 <span class="mono">{{mappings}}</span>，规则 <span class="mono">{{rules}}</span>。{{summary}}</p>
        <ul>{{#sources}}<li>{{.}}</li>{{/sources}}</ul>
        {{#differs}}<table class="cards"><thead><tr><th>规则</th><th>现有</th><th>重放后</th><th>新增</th><th>撤回</th><th>变化</th><th>示例（身份证号已遮盖）</th></tr></thead>
        <tbody>{{#lines}}<tr><td data-label="规则">{{title}}（{{rule}}）</td><td data-label="现有">{{before}}</td><td data-label="重放后">{{after}}</td><td data-label="新增">{{raised}}</td><td data-label="撤回">{{withdrawn}}</td><td data-label="变化">{{changed}}</td>
        <td data-label="示例"><ul class="plain">{{#examples}}<li>{{.}}</li>{{/examples}}</ul></td></tr>{{/lines}}</tbody></table>{{/differs}}
        </section>{{/replay}}
        {{^replay}}<section class="card" id="replay"><h2>上线前试算</h2><p>改映射或规则前，把改动后的目录交给 <code>hubd replay --period 2026-10 --mappings 目录</code>：它用归档的原始文件在临时副本中重放该月，列出会新增、撤回、改变的预警，不改动监测库。最近一次的结果显示在这里。</p></section>{{/replay}}
        """,
        "users": """
        <h1>用户</h1>
        {{#notice}}<p class="flash">{{notice}}</p>{{/notice}}
        {{#error}}<p class="error">{{error}}</p>{{/error}}
        <table class="cards"><thead><tr><th>用户名</th><th>姓名</th><th>角色</th><th>乡镇</th><th>状态</th><th>操作</th></tr></thead>
        <tbody>{{#users}}<tr><td data-label="用户名">{{username}}</td><td data-label="姓名">{{displayName}}</td><td data-label="角色">{{role}}</td><td data-label="乡镇">{{townships}}</td><td data-label="状态">{{state}}</td>
        <td class="account-actions">
          {{#locked}}<form method="post" action="/admin/users/{{username}}"><input type="hidden" name="_csrf" value="{{csrf}}"><button name="action" value="unlock">解锁</button></form>{{/locked}}
          {{^self}}{{#active}}<form method="post" action="/admin/users/{{username}}"><input type="hidden" name="_csrf" value="{{csrf}}"><button name="action" value="disable">停用</button></form>{{/active}}{{/self}}
          {{^active}}<form method="post" action="/admin/users/{{username}}"><input type="hidden" name="_csrf" value="{{csrf}}"><button name="action" value="enable">启用</button></form>{{/active}}
          <details><summary>重置密码</summary><form method="post" action="/admin/users/{{username}}"><input type="hidden" name="_csrf" value="{{csrf}}">
            <label>新密码（至少 10 位，不能太常见）<input name="password" type="password" required autocomplete="new-password"></label><button name="action" value="reset">重置</button></form></details>
        </td></tr>{{/users}}</tbody></table>
        <section class="card narrow"><h2>新增用户</h2>
          <form method="post" action="/admin/users">
            <input type="hidden" name="_csrf" value="{{csrf}}">
            <label>用户名<input name="username" required></label>
            <label>姓名<input name="display_name" required></label>
            <label>角色<select name="role">{{#roles}}<option value="{{value}}">{{label}}</option>{{/roles}}</select></label>
            <label>辖区代码：乡镇 9 位、县 6 位，多个用逗号分隔（核查员必填；分析员填了只看这些县或乡镇，不填看全部；管理员、操作员不填）<input name="townships" placeholder="411081101" list="township-codes"></label>
            <datalist id="township-codes">{{#townshipChoices}}<option value="{{code}}">{{name}}</option>{{/townshipChoices}}</datalist>
            <label>初始密码（至少 10 位，不能太常见、不能含用户名）<input name="password" type="password" required autocomplete="new-password"></label>
            <button type="submit" class="primary">新增</button>
          </form>
        </section>
        """,
        "audit": """
        <h1>审计日志</h1>
        <p>链校验：{{chain}}</p>
        <form class="filters" method="get" action="/admin/audit">
          <input name="user" value="{{user}}" placeholder="用户名" aria-label="用户名">
          <input name="action" value="{{action}}" placeholder="操作，如 查看案件" aria-label="操作">
          <input name="text" value="{{text}}" placeholder="对象或详情中的文字" aria-label="文字">
          <button type="submit">筛选</button>{{#filtered}}<a class="button" href="/admin/audit">清除筛选</a>{{/filtered}}
        </form>
        <table class="cards"><thead><tr><th>时间</th><th>用户</th><th>操作</th><th>对象</th><th>详情</th><th>地址</th></tr></thead>
        <tbody>{{#entries}}<tr><td data-label="时间">{{at}}</td><td data-label="用户">{{username}}</td><td data-label="操作">{{action}}</td><td data-label="对象">{{target}}</td><td data-label="详情">{{detail}}</td><td data-label="地址">{{address}}</td></tr>{{/entries}}</tbody></table>
        {{#next}}<nav class="pager"><a class="button" href="{{next}}">更早的记录</a></nav>{{/next}}
        """,
        "message": """
        <section class="card narrow"><h1>{{heading}}</h1><p>{{text}}</p><p><a href="/">返回首页</a></p></section>
        """,
    ]

    static let css = """
    :root { --red: #c0392b; --ink: #1d2733; --muted: #5d6b78; --line: #dde3e9; --bg: #f5f7f9; --blue: #1f5fa8; }
    * { box-sizing: border-box; }
    body { margin: 0; font-family: "PingFang SC", "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif; color: var(--ink); background: var(--bg); font-size: 16px; line-height: 1.5; }
    header.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 1rem; background: #123a63; color: #fff; }
    header.top a { color: #fff; text-decoration: none; }
    .brand { font-weight: bold; font-size: 1.1rem; }
    nav { display: flex; flex-wrap: wrap; gap: .8rem; }
    form.logout { margin-left: auto; display: flex; gap: .5rem; align-items: center; }
    .who { font-size: .9rem; opacity: .9; }
    main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
    h1 { font-size: 1.4rem; margin: .4rem 0 1rem; }
    h2 { font-size: 1.15rem; margin: 0 0 .6rem; }
    .card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }
    .narrow { max-width: 420px; margin: 2rem auto; }
    label { display: block; margin: .5rem 0; }
    input, select, textarea, button { font: inherit; padding: .45rem .6rem; border: 1px solid #b8c2cc; border-radius: 6px; max-width: 100%; }
    label input, label select, label textarea { display: block; width: 100%; margin-top: .2rem; }
    label.radio, label.check { display: inline-flex; gap: .3rem; align-items: center; margin-right: 1rem; }
    label.radio input, label.check input { width: auto; display: inline; }
    button, .button { background: #fff; border: 1px solid #b8c2cc; border-radius: 6px; padding: .45rem .6rem; cursor: pointer; color: var(--ink); text-decoration: none; display: inline-block; }
    button.primary { background: var(--blue); color: #fff; border-color: var(--blue); }
    .error, .overdue { color: var(--red); }
    .flash { background: #e8f4ea; border: 1px solid #b9dcc0; padding: .5rem .8rem; border-radius: 6px; }
    .counts { display: flex; gap: 1.5rem; margin-bottom: 1rem; flex-wrap: wrap; }
    .counts b { font-size: 1.4rem; }
    .counts .overdue b { color: var(--red); }
    .pager { display: flex; gap: 1rem; align-items: center; justify-content: center; margin: 1rem 0; }
    .filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: 1rem; }
    ul.cases { list-style: none; padding: 0; margin: 0; }
    .search { display: flex; gap: .4rem; width: 100%; }
    .search input { flex: 1; min-width: 0; }
    details.more { width: 100%; }
    details.more summary { cursor: pointer; padding: .5rem 0; min-height: 44px; display: flex; align-items: center; color: var(--blue); }
    details.more .choices { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
    .field-error { color: var(--red); margin: -.2rem 0 .6rem; font-size: .95rem; }
    ul.members { list-style: none; padding: 0; margin: 0; }
    ul.members li { padding: .45rem 0; border-bottom: 1px solid var(--line); }
    ul.members .relation { color: var(--muted); }
    .badge.sev-medium { background: #fdf0c4; color: #7a5a00; }
    .badge.sev-low { background: #e3e9ef; color: #44525f; }
    .badge.status-closed { background: #dff0e2; color: #1e6b34; }
    .badge.reopened { background: #f3e5f5; color: #6a1b9a; }
    li.case.sev-medium > a { border-left-color: #d4a20b; }
    li.case.sev-low > a { border-left-color: #8aa0b4; }
    li.case .name { font-weight: bold; }
    label.pick { display: flex; gap: .7rem; align-items: flex-start; padding: .7rem .9rem; margin-bottom: .5rem; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
    label.pick input { width: 1.5rem; height: 1.5rem; flex: none; margin-top: .1rem; }
    .dispatch-bar { position: sticky; bottom: 0; background: #f4f6f8; padding: .6rem 0; display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; }
    .dispatch-bar button { min-height: 44px; }
    li.case > a { display: grid; grid-template-columns: 1fr; gap: .1rem; padding: .7rem .9rem; margin-bottom: .5rem; background: #fff; border: 1px solid var(--line); border-left: 5px solid #8aa0b4; border-radius: 6px; color: inherit; text-decoration: none; }
    li.case.sev-high > a { border-left-color: #d35400; }
    li.case.is-overdue > a { border-left-color: var(--red); background: #fff6f5; }
    li.case .deadline { font-size: .9rem; color: var(--muted); }
    li.case.is-overdue .deadline { color: var(--red); font-weight: bold; }
    li.case .subject { font-weight: bold; }
    .badge { font-size: .8rem; padding: .1rem .45rem; border-radius: 4px; background: #e3e9ef; vertical-align: middle; }
    .badge.sev-high { background: #fbe3d6; color: #a04000; }
    .meta { color: var(--muted); }
    dl.grid { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0 0 1rem; }
    dt { color: var(--muted); }
    dd { margin: 0; }
    table { border-collapse: collapse; width: 100%; margin-bottom: .5rem; font-size: .95rem; }
    th, td { border-bottom: 1px solid var(--line); padding: .35rem .4rem; text-align: left; vertical-align: top; }
    .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
    .alert { border-left: 4px solid #8aa0b4; padding-left: .8rem; margin-bottom: 1rem; }
    .alert.sev-high { border-left-color: #d35400; }
    .alert .message { font-size: 1.05rem; }
    table.evidence caption { text-align: left; color: var(--muted); font-size: .9rem; padding-top: .6rem; }
    .history { padding-left: 1.2rem; }
    .raw { font-size: .85rem; word-break: break-all; }
    .row-failed { background: #fff6f5; }
    .account-actions form { display: inline-block; margin: 0 .3rem .3rem 0; }
    .note { color: var(--muted); font-size: .9rem; }
    .empty { color: var(--muted); }
    button, .button, input, select, summary { min-height: 44px; }
    label.radio { min-height: 44px; padding: .3rem .2rem; }
    label.radio input, label.check input { width: 1.4rem; height: 1.4rem; min-height: 0; }
    .print-link { margin: 0 0 1rem; }
    .offline { background: #fff8e1; border: 1px solid #f0d58a; padding: .5rem .8rem; border-radius: 6px; margin-bottom: 1rem; }
    .offline .conflict { border-top: 1px solid #f0d58a; margin-top: .5rem; padding-top: .5rem; }
    .offline .conflict:first-child { border-top: 0; margin-top: 0; padding-top: 0; }
    .offline pre { white-space: pre-wrap; font: inherit; background: #fff; padding: .4rem; }
    .photos { display: flex; flex-wrap: wrap; gap: .6rem; }
    .photos figure { margin: 0; width: 150px; }
    .photos img { width: 150px; height: 150px; object-fit: cover; border-radius: 6px; border: 1px solid var(--line); }
    .photos figcaption { font-size: .85rem; color: var(--muted); }
    svg.trend { display: block; max-width: 100%; height: auto; }
    ul.plain { list-style: none; padding: 0; margin: 0; }
    ul.plain li { margin-bottom: .3rem; }
    @media (max-width: 600px) {
      body { font-size: 17px; }
      main { padding: .6rem; }
      table.wide { display: block; overflow-x: auto; white-space: nowrap; }
      table.wide::before { content: "← 左右滑动查看全部列 →"; display: block; color: var(--muted); font-size: .85rem; }
      .filters select, .filters button, .filters .button { flex: 1 1 45%; }
      .filters .search button { flex: 0 0 auto; }
      dl.grid { grid-template-columns: 1fr; }
      dt { font-size: .85rem; }
      label.radio { display: flex; margin-right: 0; }
      table.cards thead { display: none; }
      table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: 100%; }
      table.cards tr { border: 1px solid var(--line); border-radius: 6px; margin-bottom: .5rem; background: #fff; padding: .3rem .5rem; }
      table.cards td { border: 0; padding: .15rem 0; }
      table.cards td[data-label]::before { content: attr(data-label) "："; color: var(--muted); }
      .mono { word-break: break-all; }
    }
    .sheet h1 { font-size: 1.3rem; text-align: center; }
    .sheet h2 { font-size: 1.05rem; margin-top: 1rem; }
    table.form-table th, table.form-table td { border: 1px solid #888; padding: .3rem .4rem; }
    .blank-lines { height: 9rem; background: repeating-linear-gradient(#fff, #fff 2.2rem, #999 2.2rem, #999 2.3rem); border-bottom: 1px solid #999; }
    .signatures { margin-top: 1.5rem; }
    .sheet { background: #fff; padding: 1rem; margin-bottom: 1rem; border: 1px solid var(--line); }
    @page { size: A4; margin: 15mm; }
    @media print {
      .sheet { border: 0; padding: 0; margin: 0; page-break-after: always; break-after: page; }
      header.top, .print-link, form, .no-print { display: none !important; }
      body { background: #fff; font-size: 12pt; }
      main { max-width: none; padding: 0; }
      .card { border: 0; padding: 0; }
    }
    """
}

extension Views {
    /// The inbox's only script, served from the hub itself (the CSP allows no inline script):
    /// the reason or the monitoring category becomes required as soon as the outcome that needs
    /// it is chosen, and the filters open by themselves on a wide screen.
    static let script = """
    (function () {
      function sync(form) {
        var chosen = form.querySelector('input[name=outcome]:checked');
        var o = chosen ? chosen.value : '';
        var reason = form.querySelector('[name=reason]');
        var type = form.querySelector('[name=monitoring_type]');
        if (reason) { reason.required = (o === 'no_risk' || o === 'data_wrong'); }
        if (type) { type.required = (o === 'monitor'); }
      }
      // A refused form: bring its first error to the middle of the screen (after the browser
      // has scrolled to the form's anchor) and put the cursor in that field.
      window.addEventListener('load', function () {
        var err = document.querySelector('.field-error');
        if (!err) { return; }
        setTimeout(function () {
          err.scrollIntoView({ block: 'center' });
          var field = err.previousElementSibling && err.previousElementSibling.querySelector('input, textarea, select');
          if (field) { field.focus({ preventScroll: true }); }
        }, 0);
      });
      document.addEventListener('change', function (e) {
        if (e.target.form && e.target.form.classList.contains('visit')) { sync(e.target.form); }
      });

      // Offline: visits typed without a connection wait on the phone and are sent when it
      // returns; one the server refuses because the case changed meanwhile is shown, not lost.
      // Kept per user: another user of the same phone never sees or sends them.
      var USER = document.body ? document.body.getAttribute('data-user') || '' : '';
      var KEY = 'hub-visits:' + USER, CONFLICTS = 'hub-visit-conflicts:' + USER;
      function token() { var t = document.querySelector('input[name=_csrf]'); return t ? t.value : ''; }
      function load(k) { try { return JSON.parse(localStorage.getItem(k) || '[]'); } catch (e) { return []; } }
      function store(k, v) { localStorage.setItem(k, JSON.stringify(v)); }
      function show() {
        var box = document.getElementById('offline-status');
        if (!box) { return; }
        var q = load(KEY), c = load(CONFLICTS);
        box.textContent = '';
        if (q.length) {
          var p = document.createElement('p');
          p.textContent = '有 ' + q.length + ' 条入户核实记录保存在本机，尚未提交；联网后自动提交。';
          box.appendChild(p);
        }
        c.forEach(function (item, i) {
          var d = document.createElement('div'); d.className = 'conflict';
          var h = document.createElement('p');
          h.textContent = '案件 #' + item.caseId + ' 的核实记录未能提交：' + item.why + '。你填写的内容如下，请核对后在案件页重新处理：';
          var pre = document.createElement('pre'); pre.textContent = item.text;
          var b = document.createElement('button'); b.type = 'button'; b.textContent = '已处理，删除这条';
          b.addEventListener('click', function () { var all = load(CONFLICTS); all.splice(i, 1); store(CONFLICTS, all); show(); });
          d.appendChild(h); d.appendChild(pre); d.appendChild(b); box.appendChild(d);
        });
        box.hidden = !q.length && !c.length;
      }
      function describe(fields) {
        var names = { visited_on: '核实日期', visitors: '入户人员', findings: '核实情况', outcome: '核实结果', monitoring_type: '监测对象类别', reason: '原因' };
        return fields.filter(function (f) { return names[f[0]] && f[1]; }).map(function (f) { return names[f[0]] + '：' + f[1]; }).join('\\n');
      }
      function post(item) {
        var body = new URLSearchParams();
        // Sent with this page's token: the session may have been renewed since it was typed.
        item.fields.forEach(function (f) { body.append(f[0], f[0] === '_csrf' ? token() : f[1]); });
        return fetch(item.action, { method: 'POST', body: body, credentials: 'same-origin', redirect: 'follow' });
      }
      var sending = false;
      function flush() {
        var q = load(KEY);
        if (!USER || !q.length || sending) { show(); return; }
        sending = true;
        var item = q[0];
        post(item).then(function (res) {
          return res.text().then(function (html) {
            var rest = load(KEY).slice(1);
            if (res.ok && res.url.indexOf('done=visit') >= 0) {
              store(KEY, rest);
            } else if (res.status === 400 || res.status === 404 || res.status === 403) {
              var m = html.match(/<p class="error"[^>]*>([^<]*)<\\/p>/);
              var c = load(CONFLICTS);
              var why = m ? m[1] : (res.status === 404 ? '案件已不在你的范围内' : res.status === 403 ? '提交被拒绝' : '案件已有变化');
              c.push({ caseId: item.caseId, why: why, text: item.text || describe(item.fields) });
              store(CONFLICTS, c); store(KEY, rest);
            } else {
              throw new Error('not now');   // signed out or server trouble: keep it, try later
            }
            sending = false; flush();
          });
        }).catch(function () { sending = false; show(); });
      }
      document.addEventListener('submit', function (e) {
        var f = e.target;
        if (!f.classList || !f.classList.contains('visit')) { return; }
        e.preventDefault();
        var fields = Array.from(new FormData(f).entries());
        var chosen = f.querySelector('input[name=outcome]:checked');
        var shown = fields.map(function (p) { return p[0] === 'outcome' && chosen ? [p[0], chosen.parentNode.textContent.trim()] : p; });
        var item = { action: f.getAttribute('action').split('#')[0], caseId: f.getAttribute('action').split('/')[2], fields: fields, text: describe(shown) };
        post(item).then(function (res) {
          if (res.ok && res.url.indexOf('done=visit') >= 0) { window.location = res.url; return; }
          f.submit();   // refused: the server's page shows why, with everything kept
        }).catch(function () {
          var q = load(KEY); q.push(item); store(KEY, q); show();
          var note = document.createElement('p'); note.className = 'flash'; note.setAttribute('role', 'status');
          note.textContent = '没有网络：核实记录已保存在本机，联网后自动提交。';
          f.parentNode.insertBefore(note, f);
        });
      });
      window.addEventListener('online', flush);
      setInterval(flush, 30000);
      document.addEventListener('DOMContentLoaded', function () {
        var forms = document.querySelectorAll('form.visit');
        for (var i = 0; i < forms.length; i++) { sync(forms[i]); }
        var print = document.querySelector('[data-print]');
        if (print) { print.addEventListener('click', function () { window.print(); }); }
        var more = document.querySelector('details.more');
        if (more && window.matchMedia('(min-width: 601px)').matches) { more.open = true; }
        var logout = document.querySelector('form.logout');
        if (logout && window.caches) {
          logout.addEventListener('submit', function (e) {
            e.preventDefault();
            caches.delete('hub-pages').then(function () { logout.submit(); }, function () { logout.submit(); });
          });
        }
        // Signed out (the sign-in page): nothing of the previous user's cases stays on the phone.
        if (!USER && window.caches) { caches.delete('hub-pages'); }
        flush();
        // The assigned cases, kept on the phone for a visit without signal.
        if ('serviceWorker' in navigator) {
          navigator.serviceWorker.register('/sw.js').then(function () { return navigator.serviceWorker.ready; }).then(function () {
            if (location.pathname !== '/inbox' || !USER) { return; }
            // At most once an hour: the inbox is reloaded all day, and each copy is an audited view.
            var stamp = 'hub-prefetched:' + USER, last = Number(localStorage.getItem(stamp) || 0);
            if (Date.now() - last < 3600 * 1000) { return; }
            localStorage.setItem(stamp, String(Date.now()));
            var links = Array.from(document.querySelectorAll('ul.cases li.case > a')).slice(0, 50);
            // Stored straight into the cache the service worker answers from when offline.
            caches.open('hub-pages').then(function (c) {
              links.forEach(function (a) {
                c.add(new Request(a.getAttribute('href'), { credentials: 'same-origin', headers: { 'X-Hub-Prefetch': '1' } })).catch(function () {});
              });
            });
          }).catch(function () {});
        }
      });
    })();
    """

    /// The service worker: pages of the inbox and cases are fetched from the network when there is
    /// one and kept; without a network the kept copy is shown. Only this site's GET pages.
    static let serviceWorker = """
    var PAGES = 'hub-pages';
    self.addEventListener('install', function (e) {
      e.waitUntil(caches.open(PAGES).then(function (c) { return c.addAll(['/static/hub.css', '/static/hub.js']); }));
      self.skipWaiting();
    });
    self.addEventListener('activate', function (e) { e.waitUntil(self.clients.claim()); });
    self.addEventListener('fetch', function (e) {
      var req = e.request;
      if (req.method !== 'GET') { return; }
      var url = new URL(req.url);
      if (url.origin !== self.location.origin) { return; }
      var kept = url.pathname === '/inbox' || /^\\/cases\\/\\d+$/.test(url.pathname) || url.pathname.indexOf('/static/') === 0;
      if (!kept) { return; }
      e.respondWith(fetch(req).then(function (res) {
        if (res.ok && !res.redirected) {
          var copy = res.clone();
          caches.open(PAGES).then(function (c) { c.put(url.pathname === '/inbox' ? '/inbox' : url.pathname, copy); });
        }
        return res;
      }).catch(function () {
        return caches.match(url.pathname === '/inbox' ? '/inbox' : url.pathname).then(function (r) {
          return r || new Response('<!DOCTYPE html><html lang="zh-CN"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><p>没有网络，这一页也没有保存在本机。请联网后再打开。</p></html>',
                                   { headers: { 'Content-Type': 'text/html; charset=utf-8' } });
        });
      }));
    });
    """
}

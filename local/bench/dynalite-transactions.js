#!/usr/bin/env node
// dynalite with TransactWriteItems: the bench's DynamoDB (local/hubspot_local/stand_ins.py starts it).
//
// dynalite (https://github.com/architect/dynalite, pinned by package-lock.json) has no transactions, and the
// contact versions table leases its contacts with `TransactWriteItems` (layers/common/hubspot_destination/
// aws/dynamodb.py). This starts dynalite as its own CLI would (`dynalite --port N --host H --createTableMs MS`)
// and puts a request listener in front of dynalite's: `X-Amz-Target: DynamoDB_20120810.TransactWriteItems`
// is answered here, every other request goes to dynalite's listener unchanged. The transaction works on
// dynalite's own store (captured by wrapping `require('dynalite/db').create`), with dynalite's own checks:
// each Put is typed and validated as dynalite validates a `PutItem` (validations/putItem.js), its item by
// `db.validateItem`, its condition by `db.checkConditional`.
//
// Only `Put` actions are supported (all the product sends); a transaction with `Update`, `Delete` or
// `ConditionCheck` is refused with a ValidationException, as is one of no or more than 100 actions, or with
// two actions on one item. Atomicity: every item the transaction writes is locked first with dynalite's
// per-table item lock (`itemDb.lock`, the one its PutItem, and so its BatchWriteItem, takes), in sorted
// (table, key) order so that two transactions cannot deadlock; then all the items are read and every
// condition checked, and only if all pass are the items written (one LevelDB batch per table), before the
// locks are released. So a transaction and a concurrent write of one of its items wait for each other
// instead of DynamoDB's refusal with `TransactionConflict`; reads (GetItem, BatchGetItem) take no lock in
// dynalite, as before. Not done: the idempotency of `ClientRequestToken` (a repeated call runs again: its
// Puts then fail their conditions and come back with the item, ReturnValuesOnConditionCheckFailure),
// `ReturnConsumedCapacity` and `ReturnItemCollectionMetrics` (the answer is `{}`), and dynalite's checks of
// the Authorization header's parts.
//
// Shapes, from the DynamoDB API reference:
// https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html (request,
// answer, the errors and the cancellation reason codes: `None`, `ConditionalCheckFailed` "The conditional
// request failed", ...) and
// https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CancellationReason.html (`Code`,
// `Message`, `Item`). botocore's service model (dynamodb 2012-08-10, TransactionCanceledException) adds that
// `None` is the literal string and that an item without an error has no `Message`. A cancelled transaction
// is answered HTTP 400
//   {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
//    "message": "Transaction cancelled, please refer cancellation reasons for specific reasons
//                [ConditionalCheckFailed, None]",
//    "CancellationReasons": [{"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
//                             "Item": {...}}, {"Code": "None"}]}
// (`Item` when the action asked for ALL_OLD and there is an item). Answers are written as dynalite's
// `sendData` writes them (index.js): its content type, `x-amz-crc32` (botocore checks it), `x-amzn-RequestId`.
'use strict'

const crypto = require('node:crypto')
const path = require('node:path')
const { parseArgs } = require('node:util')

const db = require('dynalite/db')
const validations = require('dynalite/validations')
const putItemValidation = require('dynalite/validations/putItem')
// dynalite's own dependency, the one its sendData uses.
const crc32 = require(require.resolve('buffer-crc32', { paths: [ path.dirname(require.resolve('dynalite')) ] }))

const TARGET = 'DynamoDB_20120810.TransactWriteItems'
const MAX_ACTIONS = 100
const JSON_TYPES = [ 'application/json', 'application/x-amz-json-1.0' ]
const CANCELLED = 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException'

let store // dynalite's store, captured when dynalite creates it
let faultsLogged = 0
const create = db.create
db.create = function (options) {
  store = create.call(this, options)
  return store
}
const dynalite = require('dynalite')

// dynalite parses every condition expression anew with its PEG parser, for each Put of a transaction and each
// PutItem: 0.3 of its 0.75 ms of CPU per contact in a bench, where every lease repeats one of two expressions.
// One expression with the same attribute names and values always parses to the same tree (which dynalite only
// reads), so the parse is memoised, a bounded number kept; a hit marks the names and values it uses as used,
// as the parse itself does (validations/index.js refuses unused ones).
const conditionParser = require('dynalite/db/conditionParser')
const parseCondition = conditionParser.parse
const PARSES_KEPT = 10000
const parses = new Map() // [expression, names, values, key condition?] as JSON -> {result, names, values}
conditionParser.parse = function (input, options) {
  const context = options.context
  const key = JSON.stringify([ input, context.attrNames, context.attrVals, Boolean(context.isKeyCondition) ])
  let parse = parses.get(key)
  if (parse === undefined) {
    const unusedNames = Object.keys(context.unusedAttrNames || {})
    const unusedValues = Object.keys(context.unusedAttrVals || {})
    const result = parseCondition.call(this, input, options) // a syntax error throws: not kept
    parse = {
      result: result,
      names: unusedNames.filter(function (name) { return !(name in context.unusedAttrNames) }),
      values: unusedValues.filter(function (name) { return !(name in context.unusedAttrVals) }),
    }
    if (parses.size >= PARSES_KEPT) parses.clear()
    parses.set(key, parse)
  }
  else {
    parse.names.forEach(function (name) { delete context.unusedAttrNames[name] })
    parse.values.forEach(function (name) { delete context.unusedAttrVals[name] })
  }
  return parse.result
}

function rand52CharId () { // as dynalite's
  return crypto.randomBytes(39).toString('base64').toUpperCase().replace(/\+|\//g, '0')
}

function sendData (res, data, statusCode) { // as dynalite's sendData
  const body = JSON.stringify(data)
  res.statusCode = statusCode || 200
  res.setHeader('x-amz-crc32', crc32.unsigned(body))
  res.setHeader('Content-Type', res.contentType)
  res.setHeader('Content-Length', Buffer.byteLength(body, 'utf8'))
  res.end(body)
}

// The actions, checked as dynalite checks a PutItem: [{put, returnOld}]. Throws dynalite's errors.
function validActions (data) {
  const items = data.TransactItems
  if (!Array.isArray(items) || items.length < 1 || items.length > MAX_ACTIONS) {
    throw db.validationError('1 validation error detected: Value at \'transactItems\' failed to satisfy ' +
      'constraint: Member must have length less than or equal to ' + MAX_ACTIONS + ' and greater than or equal to 1')
  }
  return items.map(function (action) {
    const kinds = Object.keys(action || {})
    if (kinds.length != 1 || kinds[0] != 'Put' || action.Put == null || typeof action.Put != 'object') {
      throw db.validationError('Only Put actions are supported by this stand-in\'s TransactWriteItems, one ' +
        'per element (got ' + (kinds.join(', ') || 'none') + ')')
    }
    const returnOld = action.Put.ReturnValuesOnConditionCheckFailure
    if (returnOld != null && returnOld != 'ALL_OLD' && returnOld != 'NONE') {
      throw db.validationError('1 validation error detected: Value \'' + returnOld + '\' at ' +
        '\'transactItems.1.member.put.returnValuesOnConditionCheckFailure\' failed to satisfy constraint: ' +
        'Member must satisfy enum value set: [ALL_OLD, NONE]')
    }
    // checkTypes drops what a PutItem has not (ReturnValuesOnConditionCheckFailure) and types the rest;
    // checkValidations parses the condition (`_condition`) for db.checkConditional.
    const put = validations.checkTypes(Object.assign({}, action.Put), putItemValidation.types)
    validations.checkValidations(put, putItemValidation.types, putItemValidation.custom, store)
    return { put: put, returnOld: returnOld == 'ALL_OLD' }
  })
}

function promised (call) {
  return new Promise(function (resolve, reject) {
    call(function (err, value) { return err ? reject(err) : resolve(value) })
  })
}

async function transact (actions) {
  const seen = new Set()
  for (const action of actions) {
    action.table = await promised(function (cb) { store.getTable(action.put.TableName, cb) })
    const invalid = db.validateItem(action.put.Item, action.table)
    if (invalid != null) throw invalid
    action.itemDb = store.getItemDb(action.put.TableName)
    action.key = db.createKey(action.put.Item, action.table)
    action.lockKey = action.put.TableName + '\u0000' + action.key
    if (seen.has(action.lockKey)) {
      throw db.validationError('Transaction request cannot include multiple operations on one item')
    }
    seen.add(action.lockKey)
  }
  const unlocks = []
  try {
    const inKeyOrder = actions.slice().sort(function (a, b) {
      return a.lockKey < b.lockKey ? -1 : a.lockKey > b.lockKey ? 1 : 0
    })
    for (const action of inKeyOrder) {
      unlocks.push(await new Promise(function (resolve) {
        action.itemDb.lock(action.key, function (release) { resolve(release()) })
      }))
    }
    for (const action of actions) {
      action.existing = await promised(function (cb) {
        action.itemDb.get(action.key, function (err, item) {
          return err && err.name != 'NotFoundError' ? cb(err) : cb(null, err ? undefined : item)
        })
      })
    }
    const reasons = actions.map(function (action) {
      if (db.checkConditional(action.put, action.existing) == null) return { Code: 'None' }
      const reason = { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' }
      if (action.returnOld && action.existing) reason.Item = action.existing
      return reason
    })
    if (reasons.some(function (reason) { return reason.Code != 'None' })) {
      const err = new Error('transaction cancelled')
      err.statusCode = 400
      err.body = {
        __type: CANCELLED,
        message: 'Transaction cancelled, please refer cancellation reasons for specific reasons [' +
          reasons.map(function (reason) { return reason.Code }).join(', ') + ']',
        CancellationReasons: reasons,
      }
      throw err
    }
    const batches = new Map() // table name -> [itemDb, operations]
    for (const action of actions) {
      await promised(function (cb) { db.updateIndexes(store, action.table, action.existing, action.put.Item, cb) })
      if (!batches.has(action.put.TableName)) batches.set(action.put.TableName, [ action.itemDb, [] ])
      batches.get(action.put.TableName)[1].push({ type: 'put', key: action.key, value: action.put.Item })
    }
    for (const [ itemDb, operations ] of batches.values()) {
      await promised(function (cb) { itemDb.batch(operations, cb) })
    }
  }
  finally {
    unlocks.forEach(function (unlock) { unlock() })
  }
}

function transactWriteItems (req, res) {
  const chunks = []
  req.on('data', function (chunk) { chunks.push(chunk) })
  req.on('end', function () {
    req.removeAllListeners()
    res.setHeader('x-amzn-RequestId', rand52CharId())
    const contentType = (req.headers['content-type'] || '').split(';')[0].trim()
    res.contentType = contentType != 'application/x-amz-json-1.0' ? 'application/json' : contentType // as dynalite
    let data
    try {
      data = JSON.parse(Buffer.concat(chunks).toString())
    }
    catch {
      return sendData(res, { __type: 'com.amazon.coral.service#SerializationException' }, 400)
    }
    function refuse (err) {
      if (err.statusCode) return sendData(res, err.body, err.statusCode)
      // A fault of this file: answered, not fatal; logged a few times only (stderr is a pipe no one drains).
      if (faultsLogged++ < 5) console.error('[dynalite-transactions]', err)
      sendData(res, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(err) }, 500)
    }
    let actions
    try {
      actions = validActions(data || {})
    }
    catch (err) {
      return refuse(err)
    }
    transact(actions).then(function () { sendData(res, {}) }, refuse)
  })
}

function main () {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '4567' },
      host: { type: 'string' },
      createTableMs: { type: 'string' },
      deleteTableMs: { type: 'string' },
      updateTableMs: { type: 'string' },
    },
  })
  const options = {}
  for (const name of [ 'createTableMs', 'deleteTableMs', 'updateTableMs' ]) {
    if (values[name] != null) options[name] = Number(values[name])
  }
  const server = dynalite(options)
  const dynaliteListeners = server.listeners('request')
  server.removeAllListeners('request')
  server.on('request', function (req, res) {
    const contentType = (req.headers['content-type'] || '').split(';')[0].trim()
    if (req.method == 'POST' && req.headers['x-amz-target'] == TARGET && JSON_TYPES.includes(contentType)) {
      return transactWriteItems(req, res)
    }
    dynaliteListeners.forEach(function (listener) { listener.call(server, req, res) })
  })
  server.listen(Number(values.port), values.host, function () {
    const address = server.address()
    console.log('dynalite with TransactWriteItems listening at http://%s:%s', values.host || 'localhost', address.port)
  })
}

main()
